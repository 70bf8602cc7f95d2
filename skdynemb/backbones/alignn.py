"""ALIGNN (Choudhary & DeCost, npj Comput. Mater. 7, 185, 2021) in pure PyTorch, as a stage extractor.

The module tree, parameter names and shapes are those of the official
``alignn.models.alignn.ALIGNN``, so its checkpoints load with ``strict=True``; the DGL message
passing is replaced by gathers and ``index_add_`` over the block-diagonal batches of
:mod:`skdynemb.graphs`. Inputs: 92-d CGCNN atom features (jarvis-tools' table), bond lengths on
80 Gaussians over 0–8 Å, bond-angle cosines on 40 Gaussians over -1..1.

Stages (all ``hidden_features`` = 256-d for the official models): ``"embedding"`` (atom MLP),
``"alignn1"``..``"alignn4"`` (atom + line graph updates), ``"gcn1"``..``"gcn4"`` (atom graph only).
Bond features exist after the embedding and after every layer; angle features after the
embedding and after each ALIGNN layer.

Checkpoints: a folder or zip holding ``config.json`` (the official training config, model
settings under ``"model"``) and ``best_model.pt`` or ``checkpoint_<n>.pt`` (as the official
figshare zips), or a bare state-dict ``.pt``. :func:`save_checkpoint` writes the same layout.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from skdynemb.backbones.base import Backbone, StageOutput
from skdynemb.graphs import AlignnBatch, batch_graphs, build_alignn_graph

#: Official pretrained ALIGNN models (figshare; the names of ``alignn.pretrained``), all trained on
#: the default graph (k-nearest, 12 neighbours, 8 Å) with CGCNN atom features.
OFFICIAL_MODELS = {
    "mp_e_form_alignn": "https://ndownloader.figshare.com/files/31458811",
    "mp_gappbe_alignn": "https://ndownloader.figshare.com/files/31458814",
    "jv_formation_energy_peratom_alignn": "https://ndownloader.figshare.com/files/31458679",
    "jv_optb88vdw_total_energy_alignn": "https://ndownloader.figshare.com/files/31459642",
    "jv_optb88vdw_bandgap_alignn": "https://ndownloader.figshare.com/files/31459636",
    "jv_mbj_bandgap_alignn": "https://ndownloader.figshare.com/files/31458694",
    "jv_bulk_modulus_kv_alignn": "https://ndownloader.figshare.com/files/31458649",
    "jv_shear_modulus_gv_alignn": "https://ndownloader.figshare.com/files/31458724",
}
STAGE_PREFIXES = ("alignn", "gcn")
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "best_model.pt"
_EDGE_BLOCK = 8192  # edges per block in inference (8192 x 256 float32 = 8 MiB)
_TORCH_SUFFIXES = (".pt", ".pth", ".tar")  # torch.save files (themselves zips), not model archives


# ----------------------------------------------------------------------------- configuration


@dataclass
class ALIGNNConfig:
    """Hyper-parameters, with the field names and defaults of the official ``ALIGNNConfig``."""

    name: str = "alignn"
    alignn_layers: int = 4
    gcn_layers: int = 4
    atom_input_features: int = 92
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 256
    output_features: int = 1
    link: str = "identity"
    zero_inflated: bool = False
    classification: bool = False
    num_classes: int = 2
    extra_features: int = 0

    def __post_init__(self):
        if self.name != "alignn":
            raise ValueError(f"model name {self.name!r}: only the plain 'alignn' architecture is supported")
        if self.link not in ("identity", "log", "logit"):
            raise ValueError(f"link must be 'identity', 'log' or 'logit', got {self.link!r}")
        if self.extra_features != 0:
            raise ValueError("extra_features != 0 (per-structure extra inputs) is not supported")
        if self.atom_input_features != 92:
            raise ValueError(
                f"atom_input_features={self.atom_input_features}: only the 92-d CGCNN features are supported"
            )
        for name in ("alignn_layers", "gcn_layers", "edge_input_features", "triplet_input_features",
                     "embedding_features", "hidden_features", "output_features", "num_classes"):
            value, smallest = getattr(self, name), 0 if name.endswith("_layers") else 1
            if not isinstance(value, int) or value < smallest:
                raise ValueError(f"{name} must be an integer >= {smallest}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "ALIGNNConfig":
        """From a dict of official config fields; unknown fields raise (they would change the model)."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown ALIGNN config fields {unknown}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- features


def cgcnn_feature_table() -> torch.Tensor:
    """(101, 92) float32: row Z = the CGCNN one-hot features of element Z (jarvis-tools), row 0 zeros."""
    from jarvis.core.specie import cgcnn_feature_json

    with open(cgcnn_feature_json) as f:
        raw = {int(z): row for z, row in json.load(f).items()}
    table = torch.zeros(max(raw) + 1, len(raw[1]), dtype=torch.float32)
    for z, row in raw.items():  # ~100 elements, once
        table[z] = torch.tensor(row, dtype=torch.float32)
    return table


# ----------------------------------------------------------------------------- layers


class RBFExpansion(nn.Module):
    """Gaussians ``exp(-gamma (v - c_k)^2)`` on ``bins`` centres over [vmin, vmax].

    ``gamma = 1 / mean(diff(centres))`` (not squared), as in the official code.
    """

    def __init__(self, vmin: float, vmax: float, bins: int):
        super().__init__()
        self.register_buffer("centers", torch.linspace(vmin, vmax, bins))
        self.gamma = 1.0 / float(np.diff(self.centers.numpy()).mean())

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (values.unsqueeze(1) - self.centers) ** 2)


class MLPLayer(nn.Module):
    """Linear -> BatchNorm1d -> SiLU (submodule ``layer``, as the official one)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution (residual): updates node features x and edge features y.

    ``m_e = W_s x_src + W_d x_dst + W_e y_e``; ``x'_i = x_i + SiLU(BN(U x_i + sum_e sigma(m_e) V x_src /
    (sum_e sigma(m_e) + 1e-6)))`` over edges e into i; ``y'_e = y_e + SiLU(BN(m_e))``.
    """

    def __init__(self, input_features: int, output_features: int):
        super().__init__()
        self.src_gate = nn.Linear(input_features, output_features)
        self.dst_gate = nn.Linear(input_features, output_features)
        self.edge_gate = nn.Linear(input_features, output_features)
        self.bn_edges = nn.BatchNorm1d(output_features)
        self.src_update = nn.Linear(input_features, output_features)
        self.dst_update = nn.Linear(input_features, output_features)
        self.bn_nodes = nn.BatchNorm1d(output_features)

    def forward(self, src: torch.Tensor, dst: torch.Tensor, x: torch.Tensor, y: torch.Tensor, reuse_y: bool = False):
        """New (x, y); ``reuse_y`` lets inference write the new y into y's memory (y is then lost)."""
        if not self.training and not torch.is_grad_enabled():
            return self._inference(src, dst, x, y, reuse_y)
        m = self.src_gate(x).index_select(0, src) + self.dst_gate(x).index_select(0, dst) + self.edge_gate(y)
        sigma = torch.sigmoid(m)
        messages = self.dst_update(x).index_select(0, src) * sigma
        shape = (x.shape[0], m.shape[1])
        sum_sigma_h = m.new_zeros(shape).index_add_(0, dst, messages)
        sum_sigma = m.new_zeros(shape).index_add_(0, dst, sigma)
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y + F.silu(self.bn_edges(m))

    def _inference(self, src, dst, x, y, reuse_y):
        """Same maths as :meth:`forward` (eval mode, no autograd), over blocks of edges.

        The per-edge work runs on ``_EDGE_BLOCK`` edges at a time, in place, so the temporaries
        stay in cache and memory does not grow with the number of edges (line graphs of large
        batches have ~10^5-10^6 edges x 256 features).
        """
        # the edge-gate bias is added once per node instead of once per edge
        src_gate = self.src_gate(x) + self.edge_gate.bias
        dst_gate, dst_update = self.dst_gate(x), self.dst_update(x)
        edge_weight = self.edge_gate.weight.t()
        shape = (x.shape[0], src_gate.shape[1])
        sum_sigma_h, sum_sigma = src_gate.new_zeros(shape), src_gate.new_zeros(shape)
        y_out = y if reuse_y else torch.empty_like(y)  # fresh memory costs page faults
        for start in range(0, len(src), _EDGE_BLOCK):
            block = slice(start, start + _EDGE_BLOCK)
            s, d = src[block], dst[block]
            m = src_gate.index_select(0, s)
            m += dst_gate.index_select(0, d)
            torch.addmm(m, y[block], edge_weight, out=m)
            sigma = torch.sigmoid(m)
            sum_sigma.index_add_(0, d, sigma)
            sum_sigma_h.index_add_(0, d, sigma.mul_(dst_update.index_select(0, s)))
            torch.add(y[block], F.silu(self.bn_edges(m), inplace=True), out=y_out[block])
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y_out


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: edge-gated conv on the atom graph, then on the line graph."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features)

    def forward(self, batch: AlignnBatch, x, y, z, reuse_yz: bool = False):
        x, y = self.node_update(batch.edge_src, batch.edge_dst, x, y, reuse_y=reuse_yz)
        y, z = self.edge_update(batch.lg_src, batch.lg_dst, y, z, reuse_y=reuse_yz)
        return x, y, z


@dataclass
class AlignnStages:
    """Everything one forward pass computes.

    Attributes
    ----------
    x : list of torch.Tensor
        1 + alignn_layers + gcn_layers node-feature tensors, each (N, hidden).
    y : list of torch.Tensor
        The same number of bond-feature tensors (E, hidden), or (B, hidden) per-graph means.
    z : list of torch.Tensor
        1 + alignn_layers angle-feature tensors (T, hidden), or (B, hidden) per-graph means.
    readout : torch.Tensor
        (B, hidden) mean node features after the last layer.
    output : torch.Tensor
        The prediction.
    """

    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]
    readout: torch.Tensor
    output: torch.Tensor


def segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment id in ``index`` -> (num_segments, d)."""
    total = values.new_zeros((num_segments, values.shape[1])).index_add_(0, index, values)
    count = torch.bincount(index, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count.unsqueeze(1)


def _rowwise(module: nn.Module, values: torch.Tensor, width: int) -> torch.Tensor:
    """``module(values)`` for a row-wise module; in inference, block by block into one output.

    Avoids the large temporaries of the full call (for a line graph of 3e5 edges, ~1 GB of
    fresh memory and its page faults).
    """
    if module.training or torch.is_grad_enabled():
        return module(values)
    out = values.new_empty((len(values), width))
    for start in range(0, len(values), _EDGE_BLOCK):
        out[start : start + _EDGE_BLOCK] = module(values[start : start + _EDGE_BLOCK])
    return out


class ALIGNN(nn.Module):
    """The official ALIGNN architecture on :class:`~skdynemb.graphs.AlignnBatch` inputs."""

    def __init__(self, config: ALIGNNConfig | None = None):
        super().__init__()
        config = ALIGNNConfig() if config is None else config
        self.config = config
        hidden = config.hidden_features
        self.atom_embedding = MLPLayer(config.atom_input_features, hidden)
        self.edge_embedding = nn.Sequential(
            RBFExpansion(0.0, 8.0, config.edge_input_features),
            MLPLayer(config.edge_input_features, config.embedding_features),
            MLPLayer(config.embedding_features, hidden),
        )
        self.angle_embedding = nn.Sequential(
            RBFExpansion(-1.0, 1.0, config.triplet_input_features),
            MLPLayer(config.triplet_input_features, config.embedding_features),
            MLPLayer(config.embedding_features, hidden),
        )
        self.alignn_layers = nn.ModuleList([ALIGNNConv(hidden, hidden) for _ in range(config.alignn_layers)])
        self.gcn_layers = nn.ModuleList([EdgeGatedGraphConv(hidden, hidden) for _ in range(config.gcn_layers)])
        self.fc = nn.Linear(hidden, config.num_classes if config.classification else config.output_features)
        if config.link == "log":
            # The official model replaces the bias by a 0-d tensor log(0.7) (mean band gap), so its
            # checkpoints store fc.bias with shape (); keep that shape for strict loading.
            self.fc.bias = nn.Parameter(torch.tensor(np.log(0.7), dtype=torch.float32))
        self.register_buffer("atom_features", cgcnn_feature_table(), persistent=False)

    def stages(self, batch: AlignnBatch, pool_edges: bool = False) -> AlignnStages:
        """Run the network, keeping every stage; ``pool_edges`` stores y, z as per-graph means."""
        n_graphs = batch.num_graphs
        max_z = int(batch.atomic_numbers.max())
        if max_z >= len(self.atom_features) or int(batch.atomic_numbers.min()) < 1:
            raise ValueError(
                f"atomic numbers must be in 1..{len(self.atom_features) - 1} (CGCNN features); got up to {max_z}"
            )

        def keep_y(y):
            return segment_mean(y, batch.edge_graph_index, n_graphs) if pool_edges else y

        def keep_z(z):
            return segment_mean(z, batch.lg_graph_index, n_graphs) if pool_edges else z

        x = self.atom_embedding(self.atom_features.index_select(0, batch.atomic_numbers))
        y = _rowwise(self.edge_embedding, torch.norm(batch.edge_r, dim=1), self.config.hidden_features)
        z = _rowwise(self.angle_embedding, batch.lg_h, self.config.hidden_features)
        xs, ys, zs = [x], [keep_y(y)], [keep_z(z)]
        for layer in self.alignn_layers:
            x, y, z = layer(batch, x, y, z, reuse_yz=pool_edges)
            xs.append(x)
            ys.append(keep_y(y))
            zs.append(keep_z(z))
        for layer in self.gcn_layers:
            x, y = layer(batch.edge_src, batch.edge_dst, x, y, reuse_y=pool_edges)
            xs.append(x)
            ys.append(keep_y(y))
        readout = segment_mean(x, batch.graph_index, n_graphs)
        return AlignnStages(xs, ys, zs, readout, self._head(readout))

    def _head(self, readout: torch.Tensor) -> torch.Tensor:
        out = self.fc(readout)
        if self.config.link == "log":
            out = torch.exp(out)
        elif self.config.link == "logit":
            out = torch.sigmoid(out)
        if self.config.classification:
            out = torch.log_softmax(out, dim=1)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def forward(self, batch: AlignnBatch) -> torch.Tensor:
        """Prediction per graph: (B,) for one output, else (B, output_features or num_classes)."""
        return self.stages(batch, pool_edges=True).output


# ----------------------------------------------------------------------------- checkpoints


def cache_dir() -> Path:
    """Where official checkpoints are downloaded: ``$SKDYNEMB_CACHE/alignn`` or ``~/.cache/skdynemb/alignn``."""
    root = os.environ.get("SKDYNEMB_CACHE")
    return Path(root) / "alignn" if root else Path.home() / ".cache" / "skdynemb" / "alignn"


class _Inert:
    """Stand-in for any non-tensor object in a legacy checkpoint: accepts everything, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals torch's ``weights_only`` loader allows; all others become inert."""

    def find_class(self, module, name):
        allowed = torch._weights_only_unpickler._get_allowed_globals()
        key = f"{module}.{name}"
        return allowed[key] if key in allowed else _Inert


class _restricted_pickle:  # noqa: N801 - a stand-in for the ``pickle`` module, for torch.load
    Unpickler = _RestrictedUnpickler
    __name__ = "skdynemb_restricted_pickle"

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def _torch_load(data: bytes, source: str):
    """Load checkpoint bytes with ``weights_only=True``.

    Official training checkpoints (``checkpoint_<n>.pt``, pytorch-ignite) also pickle the
    optimiser and LR-scheduler state, which in older torch versions holds a bound method
    (``OneCycleLR.anneal_func``); ``weights_only=True`` refuses it. For those files only, the
    pickle is re-read with an unpickler that resolves nothing but torch's weights-only allow-list
    and turns every other object into an inert placeholder (no code from the file runs); only
    the ``"model"`` state dict is kept, and it is verified like any other.
    """
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
            raise ValueError(f"{source}: holds non-tensor objects and no 'model' state dict") from None
        return {"model": obj["model"]}


def _state_dict_of(obj, source: str) -> dict[str, torch.Tensor]:
    """The model state dict inside a loaded checkpoint (plain, or under ``"model"``)."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source}: not an ALIGNN state dict (expected a dict of tensors)")
    return obj


def infer_config(state_dict: dict[str, torch.Tensor]) -> ALIGNNConfig:
    """The architecture a state dict was saved from (link/classification cannot be seen: defaults)."""
    try:
        def count(prefix):
            return len({k.split(".")[1] for k in state_dict if k.startswith(prefix + ".")})

        return ALIGNNConfig(
            alignn_layers=count("alignn_layers"),
            gcn_layers=count("gcn_layers"),
            atom_input_features=state_dict["atom_embedding.layer.0.weight"].shape[1],
            edge_input_features=len(state_dict["edge_embedding.0.centers"]),
            triplet_input_features=len(state_dict["angle_embedding.0.centers"]),
            embedding_features=state_dict["edge_embedding.1.layer.0.weight"].shape[0],
            hidden_features=state_dict["atom_embedding.layer.0.weight"].shape[0],
            output_features=state_dict["fc.weight"].shape[0],
            link="log" if state_dict["fc.bias"].dim() == 0 else "identity",
        )
    except KeyError as exc:
        raise ValueError(f"not an ALIGNN state dict: no {exc.args[0]!r}") from None


def verify_state_dict(model: ALIGNN, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise ValueError unless ``state_dict`` has exactly the model's keys and shapes, all finite."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for key in sorted(set(expected) & set(state_dict)):
        if tuple(state_dict[key].shape) != tuple(expected[key].shape):
            problems.append(f"{key} has shape {tuple(state_dict[key].shape)}, expected {tuple(expected[key].shape)}")
        elif state_dict[key].is_floating_point() and not torch.isfinite(state_dict[key]).all():
            problems.append(f"{key} has non-finite values")
    if problems:
        raise ValueError(f"{source}: checkpoint does not fit ALIGNN({model.config}): " + "; ".join(problems))


def _pick_weights(names: Sequence[str]) -> str | None:
    """``best_model.pt`` if present, else the ``checkpoint_<n>.pt`` with the largest n, else a lone .pt."""
    best = [n for n in names if Path(n).name == _WEIGHTS_FILE]
    if best:
        return best[0]
    numbered = [(int(m.group(1)), n) for n in names if (m := re.fullmatch(r"checkpoint_(\d+)\.pt", Path(n).name))]
    if numbered:
        return max(numbered)[1]
    pts = [n for n in names if n.endswith(".pt")]
    return pts[0] if len(pts) == 1 else None


def _read_checkpoint(path: Path) -> tuple[dict, bytes, str]:
    """(config dict or {}, weight-file bytes, description) from a folder, zip or .pt file."""
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        weights = _pick_weights(names)
        if weights is None:
            raise ValueError(f"{path}: no best_model.pt / checkpoint_<n>.pt in this folder")
        configs = [n for n in names if Path(n).name == _CONFIG_FILE]
        config = json.loads((path / configs[0]).read_text()) if configs else {}
        return config, (path / weights).read_bytes(), f"{path}/{weights}"
    if path.is_file() and path.suffix not in _TORCH_SUFFIXES and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            weights = _pick_weights(names)
            if weights is None:
                raise ValueError(f"{path}: no best_model.pt / checkpoint_<n>.pt in this zip")
            configs = [n for n in names if Path(n).name == _CONFIG_FILE]
            config = json.loads(archive.read(configs[0])) if configs else {}
            return config, archive.read(weights), f"{path}:{weights}"
    if path.is_file():
        beside = path.parent / _CONFIG_FILE
        config = json.loads(beside.read_text()) if beside.is_file() else {}
        return config, path.read_bytes(), str(path)
    raise FileNotFoundError(f"no ALIGNN checkpoint at {str(path)!r}")


def _graph_settings(config: dict, source: str) -> dict:
    """The graph options of a training config; raises for model inputs this package does not build.

    ``use_canonize`` is not checked: the official inference (``alignn.pretrained``) always
    canonizes, whatever the training config says.
    """
    strategy = config.get("neighbor_strategy", "k-nearest")
    features = config.get("atom_features", "cgcnn")
    if strategy != "k-nearest" or features != "cgcnn":
        raise ValueError(
            f"{source}: trained on neighbor_strategy={strategy!r}, atom_features={features!r}; "
            "only the default k-nearest graph with cgcnn atom features is supported"
        )
    return {"cutoff": float(config.get("cutoff", 8.0)), "max_neighbors": int(config.get("max_neighbors", 12))}


def load_checkpoint(path: str | Path) -> tuple[ALIGNN, dict]:
    """Load a checkpoint (folder, zip or .pt, see module docstring) into an eval-mode :class:`ALIGNN`.

    Returns the model and the graph settings ``{"cutoff", "max_neighbors"}`` it was trained with.
    """
    path = Path(path)
    config, data, source = _read_checkpoint(path)
    state_dict = _state_dict_of(_torch_load(data, source), source)
    model_config = ALIGNNConfig.from_dict(config["model"]) if "model" in config else infer_config(state_dict)
    model = ALIGNN(model_config)
    verify_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), _graph_settings(config, source)


def save_checkpoint(
    model: ALIGNN, config: ALIGNNConfig | dict, folder: str | Path, cutoff: float = 8.0, max_neighbors: int = 12
) -> Path:
    """Write ``folder/config.json`` (official layout, model settings under ``"model"``) and
    ``folder/best_model.pt`` (the state dict); ``cutoff`` (Å) / ``max_neighbors`` are the graph settings.
    """
    config = config if isinstance(config, ALIGNNConfig) else ALIGNNConfig.from_dict(config)
    if config != model.config:
        raise ValueError(f"config {config} does not describe the model ({model.config})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": config.to_dict(),
        "neighbor_strategy": "k-nearest",
        "atom_features": "cgcnn",
        "use_canonize": True,
        "compute_line_graph": True,
        "cutoff": float(cutoff),
        "max_neighbors": int(max_neighbors),
    }
    (folder / _CONFIG_FILE).write_text(json.dumps(settings, indent=2))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / _WEIGHTS_FILE)
    return folder


def fetch_official(name: str) -> Path:
    """Local zip of official model ``name``, downloaded into :func:`cache_dir` on first use."""
    if name not in OFFICIAL_MODELS:
        raise ValueError(f"unknown ALIGNN model {name!r}; official names: {sorted(OFFICIAL_MODELS)}")
    target = cache_dir() / f"{name}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.part")
    try:
        urllib.request.urlretrieve(OFFICIAL_MODELS[name], partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download ALIGNN model {name!r} from {OFFICIAL_MODELS[name]} ({exc}). "
            f"Offline? Download that file elsewhere and pass its path (weights='/path/to/{name}.zip', "
            f"or the extracted folder), or save it as {target}."
        ) from exc
    partial.replace(target)
    return target


# ----------------------------------------------------------------------------- backbone


@dataclass
class AlignnBackbone(Backbone):
    """An :class:`ALIGNN` exposed stage by stage (build it with :func:`load`).

    ``cutoff`` (Å) and ``max_neighbors`` are the graph settings; ``batch_size`` structures go
    through the network per block-diagonal batch.
    """

    cutoff: float = 8.0
    max_neighbors: int = 12
    batch_size: int = 64
    known_elements: int = field(default=100, repr=False)

    def check_elements(self, crystal, index: int) -> None:
        bad = sorted({int(z) for z in np.asarray(crystal.numbers) if not 1 <= z <= self.known_elements})
        if bad:
            raise ValueError(
                f"sample {index} (id={crystal.id!r}): {self.name} has no CGCNN atom features for "
                f"atomic number(s) {bad} (covers Z = 1..{self.known_elements})"
            )

    def _batches(self, crystals: Sequence) -> list[tuple[AlignnBatch, list]]:
        from skdynemb.structures import Crystal, to_crystal

        crystals = [c if isinstance(c, Crystal) else to_crystal(c, index=i) for i, c in enumerate(crystals)]
        for i, crystal in enumerate(crystals):
            self.check_elements(crystal, i)
        chunks = [crystals[k : k + self.batch_size] for k in range(0, len(crystals), self.batch_size)]
        return [
            (batch_graphs([build_alignn_graph(c, self.cutoff, self.max_neighbors) for c in chunk]), chunk)
            for chunk in chunks
        ]

    def forward_stages(self, crystals: Sequence) -> list[StageOutput]:
        """Per crystal: atom features per stage (site order), mean bond and angle features per stage."""
        self.module.eval()
        results = []
        for batch, chunk in self._batches(crystals):
            with torch.no_grad():
                stages = self.module.stages(batch.to(self.device), pool_edges=True)
            sizes = [c.num_sites for c in chunk]
            atoms = [torch.split(x.float().cpu(), sizes) for x in stages.x]
            bonds = [y.float().cpu().numpy() for y in stages.y]
            angles = [z.float().cpu().numpy() for z in stages.z]
            for i in range(len(chunk)):
                results.append(
                    StageOutput(
                        atom=[a[i].numpy().copy() for a in atoms],
                        bond=[b[i].copy() for b in bonds],
                        angle=[a[i].copy() for a in angles],
                    )
                )
        return results

    def predict(self, crystals: Sequence) -> np.ndarray:
        """The network's own prediction per crystal (units of the checkpoint's target)."""
        self.module.eval()
        outputs = []
        for batch, _ in self._batches(crystals):
            with torch.no_grad():
                outputs.append(self.module(batch.to(self.device)).cpu())
        return torch.cat(outputs).numpy()


def _random_model(seed: int = 0) -> ALIGNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ALIGNN(ALIGNNConfig()).eval()


def load(weights: str | Path | None = None) -> AlignnBackbone:
    """An :class:`AlignnBackbone` from ``weights``.

    ``weights``: a checkpoint folder / zip / ``.pt`` path; an official model name
    (:data:`OFFICIAL_MODELS`, downloaded once into :func:`cache_dir`); or ``"random"`` for an
    untrained, seeded network (tests only). There is no implicit default.
    """
    if weights is None:
        raise ValueError(
            "ALIGNN needs weights: pass a checkpoint path (folder, zip or .pt), an official model name "
            f"({', '.join(sorted(OFFICIAL_MODELS))}), or 'random' for an untrained seeded network (tests only)"
        )
    settings = {"cutoff": 8.0, "max_neighbors": 12}
    if str(weights) == "random":
        model, name = _random_model(), "alignn:random"
    elif Path(weights).exists():
        model, settings = load_checkpoint(weights)
        name = f"alignn:{Path(weights).name}"
    elif str(weights) in OFFICIAL_MODELS:
        model, settings = load_checkpoint(fetch_official(str(weights)))
        name = f"alignn:{weights}"
    else:
        raise ValueError(
            f"ALIGNN weights {str(weights)!r}: no such file or folder, and not an official model name "
            f"({', '.join(sorted(OFFICIAL_MODELS))})"
        )
    config = model.config
    n_stages = 1 + config.alignn_layers + config.gcn_layers
    return AlignnBackbone(
        name=name,
        module=model,
        stage_names=["embedding"]
        + [f"alignn{k}" for k in range(1, config.alignn_layers + 1)]
        + [f"gcn{k}" for k in range(1, config.gcn_layers + 1)],
        stage_dims=[config.hidden_features] * n_stages,
        bond_dims=[config.hidden_features] * n_stages,
        angle_dims=[config.hidden_features] * (1 + config.alignn_layers),
        known_elements=len(model.atom_features) - 1,
        **settings,
    )
