"""ALIGNN checkpoints: read (folder, zip or bare state-dict ``.pt``), verify, load, save.

A checkpoint is a folder or zip holding ``config.json`` (the official training config: model
settings under ``"model"``, graph settings at the top) and ``best_model.pt`` or
``checkpoint_<n>.pt`` (as the official figshare zips), or a bare state-dict ``.pt``.
A *derived* checkpoint is a folder holding ``derived.json`` and a state dict of some parameters
(:func:`save_derived_checkpoint`): an official checkpoint, named and sha256-pinned, with those
parameters replaced (e.g. ALIGNN-FF with fine-tuned GCN layers), so only what changed is shipped.
Everything is read with ``torch.load(weights_only=True, map_location="cpu")``.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from skdynemb._files import atomic_write
from skdynemb.backbones.alignn.config import ALIGNNConfig
from skdynemb.backbones.alignn.model import ALIGNN
from skdynemb.backbones.alignn.graphs import KNearestGraph

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "best_model.pt"
DERIVED_FILE = "derived.json"
DERIVED_WEIGHTS_FILE = "replaced.pt"
_TORCH_SUFFIXES = (".pt", ".pth", ".tar")  # torch.save files (themselves zips), not model archives


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pinned(data: bytes, name: str, pins: dict[str, str] | None, source) -> bytes:
    """``data`` unchanged if ``pins`` has no entry for the file's name or its sha256 matches; else raise."""
    expected = (pins or {}).get(Path(name).name)
    if expected is not None and sha256(data) != expected:
        raise ValueError(
            f"{source}: {Path(name).name} has sha256 {sha256(data)}, expected {expected} "
            "(corrupt or different file; delete it to fetch it again)"
        )
    return data


def _json(data: bytes, source) -> dict:
    """A training config parsed from ``data``; a ValueError naming ``source`` if it is not valid JSON."""
    try:
        config = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not a valid JSON training config ({exc})") from exc
    if not isinstance(config, dict):
        raise ValueError(
            f"{source}: not a training config: a JSON {type(config).__name__}, expected an object "
            '(official layout: {"model": {...}, "cutoff": ..., "max_neighbors": ...})'
        )
    if "model" in config and not isinstance(config["model"], dict):
        raise ValueError(f"{source}: its \"model\" entry is a JSON {type(config['model']).__name__}, expected an object")
    return config


class GraphRuleWarning(UserWarning):
    """A checkpoint does not say (all of) its graph rule: alignn's defaults are taken, and named."""


#: the graph settings of a training config that decide the rule (absent ones take alignn's defaults)
GRAPH_KEYS = ("cutoff", "max_neighbors", "use_canonize")


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
    """The architecture a state dict was saved from (link/classification cannot be seen: defaults).

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        An ALIGNN state dict.

    Returns
    -------
    config : ALIGNNConfig
        Layer counts, widths and norm read off the tensors' names and shapes.

    Raises
    ------
    ValueError
        A key every ALIGNN state dict has is missing.
    """
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
            norm="batch" if "atom_embedding.layer.1.running_mean" in state_dict else "layer",
        )
    except KeyError as exc:
        raise ValueError(f"not an ALIGNN state dict: no {exc.args[0]!r}") from None


def verify_state_dict(model: ALIGNN, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise ValueError unless ``state_dict`` has exactly the model's keys and shapes, all finite.

    Parameters
    ----------
    model : ALIGNN
        The network the weights are for.
    state_dict : dict of str to torch.Tensor
        The weights read from the checkpoint.
    source : str
        The checkpoint file, for the message.

    Raises
    ------
    ValueError
        Keys missing or unexpected, shapes differing, or non-finite values (all listed).
    """
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
    best = [n for n in names if Path(n).name == WEIGHTS_FILE]
    if best:
        return best[0]
    numbered = [(int(m.group(1)), n) for n in names if (m := re.fullmatch(r"checkpoint_(\d+)\.pt", Path(n).name))]
    if numbered:
        return max(numbered)[1]
    pts = [n for n in names if n.endswith(".pt")]
    return pts[0] if len(pts) == 1 else None


def read_checkpoint(path: Path, pins: dict[str, str] | None = None) -> tuple[dict, bytes, str]:
    """(config dict or {}, weight-file bytes, description) from a folder, zip or .pt file; the
    bytes of each file named in ``pins`` must have that sha256.

    Parameters
    ----------
    path : Path
        A checkpoint folder, zip or ``.pt`` file.
    pins : dict of str to str, optional
        File name -> expected sha256 hex digest.

    Returns
    -------
    config : dict
        The parsed ``config.json``, or {} when there is none.
    data : bytes
        The weight file's content.
    source : str
        Which file the weights came from, for messages.

    Raises
    ------
    ValueError
        No weight file found, a pinned file's sha256 differs, or ``config.json`` is not valid JSON.
    """
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        weights = _pick_weights(names)
        if weights is None:
            raise ValueError(f"{path}: no best_model.pt / checkpoint_<n>.pt in this folder")
        configs = [n for n in names if Path(n).name == CONFIG_FILE]
        config = _json(_pinned((path / configs[0]).read_bytes(), configs[0], pins, path), path / configs[0]) if configs else {}
        return config, _pinned((path / weights).read_bytes(), weights, pins, path), f"{path}/{weights}"
    if path.is_file() and path.suffix not in _TORCH_SUFFIXES and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            weights = _pick_weights(names)
            if weights is None:
                raise ValueError(f"{path}: no best_model.pt / checkpoint_<n>.pt in this zip")
            configs = [n for n in names if Path(n).name == CONFIG_FILE]
            config = _json(_pinned(archive.read(configs[0]), configs[0], pins, path), f"{path}:{configs[0]}") if configs else {}
            return config, _pinned(archive.read(weights), weights, pins, path), f"{path}:{weights}"
    if path.is_file():
        beside = path.parent / CONFIG_FILE
        config = _json(_pinned(beside.read_bytes(), CONFIG_FILE, pins, path), beside) if beside.is_file() else {}
        return config, _pinned(path.read_bytes(), path.name, pins, path), str(path)
    raise FileNotFoundError(f"no ALIGNN checkpoint at {str(path)!r}")


def load_checkpoint(path: str | Path, pins: dict[str, str] | None = None) -> tuple[ALIGNN, KNearestGraph]:
    """Load a checkpoint (folder, zip or .pt, see :mod:`skdynemb.backbones.alignn`) into an
    eval-mode :class:`ALIGNN`.

    Returns the model and the graph rule its training config names
    (:meth:`~skdynemb.backbones.alignn.graphs.KNearestGraph.from_config`); when the checkpoint has no
    ``config.json``, or one without some of :data:`GRAPH_KEYS`, alignn's defaults are taken and a
    :class:`GraphRuleWarning` names them. A ``config.json`` that is not a JSON object is a
    ValueError naming the file. ``pins`` (file name -> sha256) are
    checked on the bytes read, before anything is unpickled.

    Parameters
    ----------
    path : str or Path
        A checkpoint folder, zip or ``.pt`` file.
    pins : dict of str to str, optional
        File name -> expected sha256 hex digest.

    Returns
    -------
    model : ALIGNN
        The network in eval mode, on the CPU.
    rule : KNearestGraph
        The graph rule it was trained with.
    """
    path = Path(path)
    if path.is_dir() and (path / DERIVED_FILE).is_file():
        return _load_derived(path, pins)
    config, data, source = read_checkpoint(path, pins)
    state_dict = _state_dict_of(_torch_load(data, source), source)
    model_config = ALIGNNConfig.from_dict(config["model"]) if "model" in config else infer_config(state_dict)
    model = ALIGNN(model_config)
    verify_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)
    rule = KNearestGraph.from_config(config, source)
    missing = [key for key in GRAPH_KEYS if key not in config]
    if missing:
        where = f"no {CONFIG_FILE} was found with it" if not config else f"its {CONFIG_FILE} lacks {missing}"
        warnings.warn(
            f"{source}: {where}, so the graph rule takes alignn's defaults: cutoff={rule.cutoff} Å, "
            f"max_neighbors={rule.max_neighbors}, use_canonize={rule.canonize}. A network trained with "
            f"another rule gives other rows (e.g. ALIGNN-FF uses use_canonize=False): put its training "
            f"{CONFIG_FILE} beside the weights",
            GraphRuleWarning, stacklevel=2,
        )
    return model.eval(), rule


def save_checkpoint(model: ALIGNN, config: ALIGNNConfig | dict, folder: str | Path,
                    rule: KNearestGraph = KNearestGraph()) -> Path:
    """Write ``folder/config.json`` (official layout, model settings under ``"model"``, the graph
    rule's official keys) and ``folder/best_model.pt`` (the state dict).

    Parameters
    ----------
    model : ALIGNN
        The network to save.
    config : ALIGNNConfig or dict
        Its architecture; must equal ``model.config``.
    folder : str or Path
        Where to write (created if needed).
    rule : KNearestGraph, default=KNearestGraph()
        The graph rule the network was trained with.

    Returns
    -------
    folder : Path
        ``folder``.

    Raises
    ------
    ValueError
        ``config`` does not describe ``model``.
    """
    config = config if isinstance(config, ALIGNNConfig) else ALIGNNConfig.from_dict(config)
    if config != model.config:
        raise ValueError(f"config {config} does not describe the model ({model.config})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"model": config.to_dict(), **rule.to_config(), "compute_line_graph": True}
    (folder / CONFIG_FILE).write_text(json.dumps(settings, indent=2))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
    return folder


def _load_derived(folder: Path, pins: dict[str, str] | None) -> tuple[ALIGNN, KNearestGraph]:
    """The base checkpoint named in ``folder/derived.json`` with the parameters of its weight file
    replaced; both files' sha256 are checked (``derived.json``'s against ``pins`` where given)."""
    from skdynemb.backbones.alignn.names import resolve

    spec = _json(_pinned((folder / DERIVED_FILE).read_bytes(), DERIVED_FILE, pins, folder), folder / DERIVED_FILE)
    for key in ("base", "weights", "sha256"):
        if not isinstance(spec.get(key), str):
            raise ValueError(f"{folder / DERIVED_FILE}: needs a string {key!r} (base model name, weight file, its sha256)")
    weights = folder / Path(spec["weights"]).name
    source = str(weights)
    data = _pinned(weights.read_bytes(), weights.name, {weights.name: spec["sha256"]}, folder)
    replaced = _state_dict_of(_torch_load(data, source), source)
    model, rule = load_checkpoint(*resolve(spec["base"]))
    expected = model.state_dict()
    unknown = sorted(k for k in replaced if k not in expected)
    if unknown:
        raise ValueError(f"{source}: parameters {unknown[:5]} are not in the base model {spec['base']!r}")
    state = dict(expected) | {k: v.to(expected[k].dtype) for k, v in replaced.items()}
    verify_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)
    return model.eval(), rule


def save_derived_checkpoint(model: ALIGNN, base: str, folder: str | Path, prefixes: Sequence[str],
                            dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model`` as official checkpoint ``base`` with the parameters under ``prefixes`` replaced.

    ``folder/replaced.pt`` holds those parameters (in ``dtype``), ``folder/derived.json`` the base
    name, the file name and its sha256. :func:`load_checkpoint` reads the folder back (fetching the
    base on first use); parameters stored in a narrower ``dtype`` are read back widened, so load
    the written folder to get the exact model it stands for.

    Parameters
    ----------
    model : ALIGNN
        The network; every parameter outside ``prefixes`` must equal the base's.
    base : str
        An official model name (:func:`~skdynemb.backbones.alignn.names.official_names`).
    folder : str or Path
        Where to write (created if needed).
    prefixes : sequence of str
        State-dict key prefixes of the replaced parameters (e.g. ``("gcn_layers.", "fc.")``).
    dtype : torch.dtype, default=torch.float32
        Storage type of the replaced parameters (``torch.float16`` halves the file).

    Returns
    -------
    folder : Path
        ``folder``.

    Raises
    ------
    ValueError
        A parameter outside ``prefixes`` differs from the base's, or no parameter is under them.
    """
    from skdynemb.backbones.alignn.names import resolve

    base_model, _ = load_checkpoint(*resolve(base))
    ours, theirs = model.state_dict(), base_model.state_dict()
    kept = {k: v for k, v in ours.items() if not k.startswith(tuple(prefixes))}
    changed = sorted(k for k, v in kept.items() if not torch.equal(v.cpu(), theirs[k]))
    if changed:
        raise ValueError(f"parameters outside {list(prefixes)} differ from {base!r}: {changed[:5]}")
    replaced = {k: v.detach().cpu().to(dtype) for k, v in ours.items() if k.startswith(tuple(prefixes))}
    if not replaced:
        raise ValueError(f"no parameter starts with any of {list(prefixes)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(replaced, buffer)
    atomic_write(folder / DERIVED_WEIGHTS_FILE, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    spec = {"base": base, "weights": DERIVED_WEIGHTS_FILE, "sha256": sha256(buffer.getvalue())}
    atomic_write(folder / DERIVED_FILE, lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=2) + "\n"))
    return folder
