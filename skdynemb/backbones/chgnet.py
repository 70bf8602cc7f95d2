"""CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) as a stage extractor ("chgnet").

The default weights are CHGNet 0.3.0 (pretrained on MPtrj energies, forces, stresses and
magmoms). They ship inside the ``chgnet`` 0.4.2 wheel: the ``chgnet`` 0.3.0 wheel on PyPI was
yanked because it lacked its weight files. The wheel's three versions are registered by name:

- ``"chgnet"`` = ``"chgnet-0.3.0"``: CHGNet 0.3.0 (MPtrj, the default);
- ``"chgnet-0.2.0"``: the first public CHGNet (MPtrj; output MLPs with biases);
- ``"chgnet-r2scan"``: CHGNet 0.3.0 fine-tuned on MP r2SCAN energies (transfer learning).

All three have the same stage layout (embedding + 4 atom convolutions of 64) and are read
with ``weights_only=True`` after their file's SHA-256 is checked against :data:`SHA256`.

Graphs come from CHGNet's own ``CrystalGraphConverter`` (atom graph 6 Å, bond graph 3 Å), built
one structure at a time.

Stages are read with forward hooks on CHGNet's own modules during its own forward pass:

- atom: ``"embedding"`` then ``"conv1"`` .. ``"conv4"`` (the output of each atom convolution,
  before the read-out LayerNorm), 64-d each, rows in site order;
- bond: mean over the structure's undirected atom-graph bonds (≤ 6 Å) after the bond
  embedding and after each of the 3 bond convolutions (CHGNet's 4th block updates atoms only;
  bonds longer than 3 Å keep their embedding, as in CHGNet);
- angle: mean over the structure's angles (bond pairs ≤ 3 Å sharing an atom) after the angle
  embedding and after each of the 3 angle updates. A structure without any angle gets
  ``angle=None``.

On CPU the output is bitwise reproducible; on GPU CHGNet's scatter-sums may differ in the last
float32 bits between runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import chgnet
import numpy as np
import torch
from chgnet.model import CHGNet

from skdynemb.backbones.base import Backbone, StageOutput, atom_rows, capture_outputs
from skdynemb.errors import InvalidStructureError
from skdynemb.structures import Crystal

_PRETRAINED = Path(chgnet.__file__).parent / "pretrained"
#: Checkpoints shipped in the chgnet wheel, by CHGNet's own model names.
BUNDLED = {
    "0.3.0": _PRETRAINED / "0.3.0" / "chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": _PRETRAINED / "0.2.0" / "chgnet_0.2.0_e30f77s348m32.pth.tar",
    "r2scan": _PRETRAINED / "r2scan" / "chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}
#: SHA-256 of each bundled checkpoint file (chgnet 0.4.2 wheel), checked before it is read.
SHA256 = {
    "0.3.0": "d14ab7c0f093efe64b60a7bcd540bca10e74fb7f46c86108a079af60524659d1",
    "0.2.0": "ef624f78b6db9d315b4ef256f1bb3207449924191b91720dc17d3f60c5df980e",
    "r2scan": "8eba3db0f35a2788bb3ae22885ad340591e27996f213c6643af522a633b50dad",
}
MAX_Z = 94  # CHGNet embeds H..Pu


def _split_means(tensor: torch.Tensor, sizes: list[int]) -> list[np.ndarray | None]:
    """Mean row of each consecutive block of ``sizes`` rows (None for an empty block)."""
    return [
        block.mean(0).numpy() if len(block) else None
        for block in torch.split(tensor.float().cpu(), sizes)
    ]


@dataclass
class ChgnetBackbone(Backbone):
    """A pretrained :class:`chgnet.model.CHGNet` exposed stage by stage (build it with :func:`load`)."""

    def _covers(self, z: int) -> bool:
        """Whether CHGNet embeds atomic number ``z`` (Z <= 94; :meth:`check_elements`)."""
        return z <= MAX_Z

    def _coverage(self) -> str:
        return f"CHGNet covers Z = 1..{MAX_Z}"

    def graphs(self, crystals: Sequence[Crystal]) -> list:
        """CHGNet ``CrystalGraph`` of each crystal (CHGNet's converter).

        A structure CHGNet cannot build a graph for raises :class:`InvalidStructureError`
        with its position in ``crystals`` (the extraction relabels it with the global index).

        Parameters
        ----------
        crystals : sequence of Crystal
            The structures.

        Returns
        -------
        graphs : list of chgnet.graph.CrystalGraph
            One graph per structure, on the backbone's device.
        """
        out = []
        for i, crystal in enumerate(crystals):
            self.check_elements(crystal, i)
            try:
                graph = self.module.graph_converter(crystal.to_pymatgen(), graph_id=crystal.id)
            except (ValueError, RuntimeError) as exc:  # isolated atoms, failed bond graph
                raise InvalidStructureError(i, crystal.id, f"CHGNet cannot build its graph: {exc}") from exc
            out.append(graph.to(self.device))
        return out

    def forward_stages(self, crystals: Sequence[Crystal]) -> list[StageOutput]:
        """Run exactly this batch (one forward of CHGNet, eval mode, no grad), split per structure.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.

        Returns
        -------
        outputs : list of StageOutput
            One per structure, in order: per-atom rows (n_sites, 64) of the embedding and of every
            atom convolution, with the mean bond and angle features per stage (``angle=None`` for
            a structure without angles).
        """
        if len(crystals) == 0:
            return []
        graphs = self.graphs(crystals)
        model = self.module
        atom_modules = [model.atom_embedding, *model.atom_conv_layers]
        bond_modules = [model.bond_embedding, *model.bond_conv_layers]
        angle_modules = [model.angle_embedding, *model.angle_layers]
        model.eval()
        with (
            torch.no_grad(),
            capture_outputs(atom_modules) as atom,
            capture_outputs(bond_modules) as bond,
            capture_outputs(angle_modules) as angle,
            warnings.catch_warnings(),
        ):
            # CHGNet's batching casts its grad-enabled volume tensors to floats: harmless here
            warnings.filterwarnings("ignore", "Converting a tensor with requires_grad=True")
            model(graphs, task="e")
        n_atoms = [len(g.atomic_number) for g in graphs]
        n_bonds = [len(g.undirected2directed) for g in graphs]
        n_angles = [len(g.bond_graph) if g.bond_graph.dim() == 2 else 0 for g in graphs]
        # with no angle in the whole batch CHGNet skips its bond and angle updates: bonds keep
        # the previous stage's features, exactly what its atom convolutions then consume
        for k in range(1, len(bond_modules)):
            bond.setdefault(k, bond[k - 1])
        bond_means = [_split_means(bond[k], n_bonds) for k in range(len(bond_modules))]
        angle_means = [_split_means(angle[k], n_angles) for k in range(len(angle))]
        atoms = atom_rows([atom[k] for k in range(len(atom_modules))], n_atoms)
        return [
            StageOutput(
                atom=atoms[i],
                bond=[stage[i] for stage in bond_means],
                angle=[stage[i] for stage in angle_means] if n_angles[i] else None,
            )
            for i in range(len(crystals))
        ]


def load(weights: str | Path | None = None) -> ChgnetBackbone:
    """Load CHGNet weights (default: the bundled 0.3.0) as a :class:`ChgnetBackbone` on CPU.

    ``weights`` is one of CHGNet's bundled model names (``"0.3.0"``, ``"0.2.0"``, ``"r2scan"``;
    their files must match :data:`SHA256`) or the path of a CHGNet checkpoint
    (``{"model": {"state_dict", "model_args"}}``). The backbone is named ``"chgnet"`` for
    0.3.0, ``"chgnet-0.2.0"`` / ``"chgnet-r2scan"`` for the other bundled versions (the registry
    names) and ``"chgnet:<file name>"`` for a file.

    Parameters
    ----------
    weights : str or Path, optional
        A bundled model name or a checkpoint path; default: ``"0.3.0"``.

    Returns
    -------
    backbone : ChgnetBackbone
        The network in eval mode on CPU.
    """
    key = "0.3.0" if weights is None else str(weights)
    path = BUNDLED.get(key, Path(key))
    if key in BUNDLED:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SHA256[key]:
            raise ValueError(f"{path}: SHA-256 {digest} differs from the pinned {SHA256[key]} of CHGNet {key}")
    # CHGNet.load / CHGNet.from_file unpickle with weights_only=False and may pick a GPU; read
    # the same checkpoint with weights_only=True and build the model from its own from_dict.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model_dict = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(model_dict, dict) or {"state_dict", "model_args"} - set(model_dict):
        raise ValueError(f"{path}: not a CHGNet checkpoint (expected model.state_dict and model.model_args)")
    state = model_dict["state_dict"]
    bad = [k for k, t in state.items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path}: non-finite weights in {bad}")
    # 0.2.0 has biases in its output MLPs; CHGNet.load sets this flag by model name
    mlp_out_bias = any(k.endswith("mlp_out.layers.1.bias") for k in state)
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet.__init__ prints its size
        model = CHGNet.from_dict(model_dict, mlp_out_bias=mlp_out_bias)  # strict state-dict load
    if not isinstance(model.bond_conv_layers, torch.nn.ModuleList) or not isinstance(
        model.angle_layers, torch.nn.ModuleList
    ):
        raise ValueError(f"{path}: a CHGNet without bond/angle updates is not supported")
    model.eval()
    atom_dim, bond_dim = model.atom_fea_dim, model.bond_fea_dim
    angle_dim = model.angle_embedding.out_features
    n_conv = model.n_conv
    return ChgnetBackbone(
        name="chgnet" if key == "0.3.0" else (f"chgnet-{key}" if key in BUNDLED else f"chgnet:{path.name}"),
        module=model,
        stage_names=["embedding", *(f"conv{k}" for k in range(1, n_conv + 1))],
        stage_dims=[atom_dim] * (n_conv + 1),
        bond_dims=[bond_dim] * n_conv,
        angle_dims=[angle_dim] * n_conv,
        default_batch_size=4,  # CHGNet's big-tensor ops slow down with larger batches on CPU
    )
