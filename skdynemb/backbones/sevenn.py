"""SevenNet (Park et al., J. Chem. Theory Comput. 20, 4857, 2024) as a stage extractor ("sevenn-*").

SevenNet is a NequIP-style E(3)-equivariant interatomic potential. The ``sevenn`` wheel (MIT; the
``sevenn`` extra) ships four pretrained checkpoints, so these backbones work offline:

- ``"sevenn-0"``: ``SevenNet_0__11Jul2024`` (sevenn's ``"7net-0"``), trained on MPtrj (PBE/PBE+U);
- ``"sevenn-0-22may2024"``: ``SevenNet_0__22May2024``, the first SevenNet-0 release (MPtrj);
- ``"sevenn-l3i5"``: ``SevenNet_l3i5``, spherical harmonics up to l = 3 (MPtrj);
- ``"sevenn-mf-0"``: ``SevenNet_MF_0`` in its ``"PBE"`` fidelity, multi-fidelity (MPtrj PBE +
  MP r2SCAN).

The multi-fidelity model has fidelity-specific weights inside its interaction blocks, so its
rows depend on the fidelity: ``sevenn-mf-0`` uses ``"PBE"`` (the checkpoint's own
``default_modal``, and the functional of the MPtrj data the other SevenNet checkpoints were
trained on); ``load("sevenn-mf-0", modal="R2SCAN")`` gives the r2SCAN
fidelity. The fidelity is a field of the backbone, so the cache keys cover it.

Everything model-specific is sevenn's own code: the network is built by sevenn's
``SevenNetCheckpoint.build_model`` (strict state-dict load), and each structure's graph by
``sevenn.train.dataload.unlabeled_atoms_to_graph`` (every neighbour within the checkpoint's
``cutoff``, 5 Å for all four; :attr:`SevennetBackbone.cutoff`), exactly as sevenn's ASE
calculator builds it. Graphs of one batch are joined with torch-geometric's ``Batch`` (as
sevenn's training loader does) and run in one forward pass. The force/stress head
(``force_output``) is removed, as sevenn's own LAMMPS deployment does, because it needs
gradients; energies are unchanged by that.

Stages, read with forward hooks on sevenn's own modules:

- ``"embedding"``: the output of ``onehot_to_feature_x``, the linear map of the one-hot element
  (128 scalars; identical for every atom of one element);
- ``"interaction1"`` .. ``"interactionN"`` (N = 5 for all four checkpoints): the node features
  after each interaction block (the output of ``{i}_equivariant_gate``), restricted to their
  invariant channels: the ``0e`` (l = 0, even) entries of the block's output irreps, located
  with e3nn's ``Irreps.slices()`` (128 of ``128x0e+64x1e+32x2e`` for SevenNet-0). The l > 0
  channels rotate with the crystal and are left out.

An atom without any neighbour within the cutoff is accepted, as sevenn's calculator accepts it:
its rows then come from its element through the blocks' self-connections alone. The geometry
guard reads the cutoff as :attr:`SevennetBackbone.neighbour_cutoff`.

SevenNet has no bond or angle features beyond the fixed radial basis, so ``bond_dims`` and
``angle_dims`` are None. :meth:`SevennetBackbone.predict_batch` gives sevenn's energy per atom
(eV/atom; for ``sevenn-mf-0`` in the chosen fidelity).

**Loading and safety.** sevenn's checkpoint reader unpickles with ``weights_only=False`` (its
configs hold numpy arrays). Before sevenn may read a file, :func:`load` reads it itself with
``torch.load(..., weights_only=True)`` (allowing only numpy's array and dtype reconstructors) and
checks it is a SevenNet checkpoint with finite weights; for the four bundled checkpoints it
also checks the file's SHA-256 against the pins in :data:`BUNDLED`. A file that reads with
``weights_only=True`` references no other Python callables, so sevenn's own read of it then
executes nothing else (provided the file does not change between the two reads).

On CPU the output is bitwise reproducible.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sevenn
import sevenn._keys as KEY
import torch
from ase import Atoms
from sevenn.atom_graph_data import AtomGraphData
from sevenn.train.dataload import unlabeled_atoms_to_graph
from sevenn.util import load_checkpoint
from torch_geometric.data import Batch

from skdynemb.backbones.base import Backbone, StageOutput, atom_rows
from skdynemb.errors import InvalidStructureError
from skdynemb.structures import Crystal

_PRETRAINED = Path(sevenn.__file__).parent / "pretrained_potentials"
#: Checkpoints shipped in the sevenn 0.13 wheel: registry name -> (path, SHA-256 of the file).
BUNDLED: dict[str, tuple[Path, str]] = {
    "sevenn-0": (
        _PRETRAINED / "SevenNet_0__11Jul2024" / "checkpoint_sevennet_0.pth",
        "7052cb42b7b3be42b40b97fa0d21077a48c54b5548948fc4dcf346629f813c36",
    ),
    "sevenn-0-22may2024": (
        _PRETRAINED / "SevenNet_0__22May2024" / "checkpoint_sevennet_0.pth",
        "5d389fafd512e6ae2830d74d0b66ffc49a55d3832653ff8e7bf7f1343013c1d1",
    ),
    "sevenn-l3i5": (
        _PRETRAINED / "SevenNet_l3i5" / "checkpoint_l3i5.pth",
        "a7ff190d41efe5b8317a03d20a468e4036a1a3e64e0b14fdbab64ac3f4bfc09d",
    ),
    "sevenn-mf-0": (
        _PRETRAINED / "SevenNet_MF_0" / "checkpoint_sevennet_mf_0.pth",
        "81791329b37d445f46b531578c182c41792d98c7814222c9e5dde276402225fd",
    ),
}
DEFAULT = "sevenn-0"
#: The fidelity a multi-fidelity checkpoint runs in when ``modal`` is not given.
DEFAULT_MODAL = "PBE"


def _safe_globals() -> list:
    """What a SevenNet checkpoint's pickle may reference besides tensors: numpy arrays (its
    config holds the per-species energy shift and scale) and their dtypes."""
    from numpy._core.multiarray import _reconstruct

    dtypes = {type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")}
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, *dtypes]


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    digest : str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_checkpoint(path: str | Path) -> dict:
    """Read a SevenNet checkpoint with ``weights_only=True`` and check its layout and weights.

    Parameters
    ----------
    path : str or Path
        The ``.pth`` file.

    Returns
    -------
    config : dict
        The checkpoint's ``config`` (cutoff in Å, species, irreps, ...).

    Raises
    ------
    ValueError
        Naming the file, if it does not read with ``weights_only=True``, lacks ``config`` or
        ``model_state_dict``, or holds non-finite weights.
    """
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of every kind: refuse the file
        raise ValueError(f"{path}: not readable as a SevenNet checkpoint with weights_only=True: {exc}") from exc
    if not isinstance(checkpoint, dict) or {"config", "model_state_dict"} - set(checkpoint):
        raise ValueError(f"{path}: not a SevenNet checkpoint (expected config and model_state_dict)")
    state = checkpoint["model_state_dict"]
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path}: non-finite weights in {bad}")
    return checkpoint["config"]


@contextmanager
def _capture_node_features(modules: Sequence[torch.nn.Module]):
    """Collect the node features ``data["x"]`` that each sevenn module (which returns the whole
    graph dict, updated in place) outputs, keyed by position, while the context is open."""
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _in, out, k=k: outputs.__setitem__(k, out[KEY.NODE_FEATURE]))
        for k, m in enumerate(modules)
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _invariant_columns(irreps) -> list[int]:
    """Column indices of the ``0e`` (l = 0, even parity) entries of an e3nn ``Irreps`` layout."""
    columns: list[int] = []
    for (_mul, ir), part in zip(irreps, irreps.slices()):
        if ir.l == 0 and ir.p == 1:
            columns.extend(range(part.start, part.stop))
    return columns


@dataclass
class SevennetBackbone(Backbone):
    """A pretrained SevenNet (sevenn's ``AtomGraphSequential``) exposed stage by stage (build it
    with :func:`load`).

    Attributes
    ----------
    cutoff : float
        Graph cutoff radius in Å, read from the checkpoint's config (every neighbour within it
        is an edge).
    modal : str or None
        The fidelity of a multi-fidelity checkpoint (e.g. ``"PBE"``), None for the others.
    known_numbers : list of int
        Atomic numbers the checkpoint has an embedding for.
    invariant_columns : list of list of int
        Per interaction block, the columns of its output node features kept as the stage (the
        ``0e`` channels).
    """

    cutoff: float = 5.0
    modal: str | None = None
    known_numbers: list[int] = field(default_factory=list, repr=False)
    invariant_columns: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def neighbour_cutoff(self) -> float:
        """The graph cutoff in Å (:attr:`cutoff`), under the name the geometry guard reads.

        See :func:`skdynemb.backbones._geometry.bound_of`.

        Returns
        -------
        cutoff : float
            The cutoff radius in Å.
        """
        return self.cutoff

    def _covers(self, z: int) -> bool:
        """Whether the checkpoint embeds atomic number ``z`` (one of :attr:`known_numbers`; :meth:`check_elements`)."""
        return z in self.known_numbers

    def _coverage(self) -> str:
        return f"the checkpoint covers {len(set(self.known_numbers))} elements"

    def graph(self, crystal: Crystal) -> AtomGraphData:
        """sevenn's graph of one crystal (every neighbour within :attr:`cutoff`), as its calculator builds it.

        Parameters
        ----------
        crystal : Crystal
            The structure.

        Returns
        -------
        graph : sevenn.atom_graph_data.AtomGraphData
            Its graph, with the backbone's fidelity (``modal``) set where it has one.
        """
        atoms = Atoms(numbers=crystal.numbers, cell=crystal.lattice, scaled_positions=crystal.frac_coords, pbc=True)
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
        if self.modal is not None:
            data[KEY.DATA_MODALITY] = self.modal
        return data

    def _run(self, crystals: Sequence[Crystal], first: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One forward over the joined graphs: the stage tensors (N_total, d_s) and the total
        energy per crystal (eV). ``first``: the sample index of ``crystals[0]``, for messages."""
        for i, crystal in enumerate(crystals, first):
            self.check_elements(crystal, i)
        graphs = []
        for i, crystal in enumerate(crystals, first):
            try:
                graphs.append(self.graph(crystal))
            except (ValueError, RuntimeError, IndexError) as exc:
                raise InvalidStructureError(i, crystal.id, f"sevenn cannot build its graph: {exc}") from exc
        batch = Batch.from_data_list(graphs).to(self.device)
        model = self.module
        n_blocks = len(self.stage_names) - 1
        stage_modules = [model._modules["onehot_to_feature_x"]] + [
            model._modules[f"{k}_equivariant_gate"] for k in range(n_blocks)
        ]
        model.eval()
        with torch.no_grad(), _capture_node_features(stage_modules) as captured, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "An issue occurred while importing 'torch-scatter'")
            out = model(batch)
        stages = [captured[0]] + [
            captured[k + 1][:, self.invariant_columns[k]] for k in range(n_blocks)
        ]
        return stages, out[KEY.PRED_TOTAL_ENERGY].reshape(-1)

    def forward_stages(self, crystals: Sequence[Crystal]) -> list[StageOutput]:
        """Run exactly this batch (one forward over the joined graphs, eval mode, no grad), split per structure.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.

        Returns
        -------
        outputs : list of StageOutput
            One per structure, in order: per-atom rows of the one-hot embedding and of every interaction block
            (its rotation-invariant columns).
        """
        if len(crystals) == 0:
            return []
        stages, _ = self._run(crystals)
        return [StageOutput(atom=rows) for rows in atom_rows(stages, [c.num_sites for c in crystals])]

    def predict_batch(self, crystals: Sequence[Crystal], first: int = 0) -> np.ndarray:
        """SevenNet's energy per atom of each crystal of this one batch.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.
        first : int, default=0
            Global sample index of ``crystals[0]``, for messages.

        Returns
        -------
        predictions : ndarray of shape (len(crystals),)
            Total energy divided by the number of atoms, in eV/atom (float64).
        """
        if len(crystals) == 0:
            return np.zeros(0)
        _, energy = self._run(crystals, first)
        sizes = np.array([c.num_sites for c in crystals], dtype=np.float64)
        return energy.double().cpu().numpy() / sizes


def load(weights: str | Path | None = None, modal: str | None = None) -> SevennetBackbone:
    """Load a SevenNet checkpoint (default: SevenNet-0, 11 Jul 2024) as a :class:`SevennetBackbone` on CPU.

    Parameters
    ----------
    weights : str or Path, optional
        A key of :data:`BUNDLED` (``"sevenn-0"``, ``"sevenn-0-22may2024"``, ``"sevenn-l3i5"``,
        ``"sevenn-mf-0"``), whose file must match its pinned SHA-256, or the path of a SevenNet
        checkpoint (``.pth`` with ``config`` and ``model_state_dict``). Default ``"sevenn-0"``.
    modal : str, optional
        Fidelity of a multi-fidelity checkpoint (one of its ``modal_list``, e.g. ``"PBE"`` or
        ``"R2SCAN"`` for ``sevenn-mf-0``); default :data:`DEFAULT_MODAL` when the checkpoint has
        it, else the checkpoint's ``default_modal``. Rejected for single-fidelity checkpoints.

    Returns
    -------
    backbone : SevennetBackbone
        In eval mode, on CPU.

    Raises
    ------
    ValueError
        Naming the file: a bundled checkpoint whose SHA-256 differs from its pin, a file that is
        not a SevenNet checkpoint readable with ``weights_only=True``, non-finite weights, or an
        unknown fidelity.
    """
    key = DEFAULT if weights is None else str(weights)
    if key in BUNDLED:
        path, pinned = BUNDLED[key]
        actual = sha256_file(path)
        if actual != pinned:
            raise ValueError(f"{path}: SHA-256 {actual} differs from the pinned {pinned} of {key!r}")
        name = key
    else:
        path = Path(key)
        name = f"sevenn:{path.name}"
    check_checkpoint(path)  # weights_only=True before sevenn's own (weights_only=False) read
    checkpoint = load_checkpoint(str(path))
    config = checkpoint.config
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "An issue occurred while importing 'torch-scatter'")
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        model = checkpoint.build_model()  # sevenn's builder, strict state-dict load
    modal_map = model.modal_map or {}
    if modal_map:
        if modal is None:
            modal = DEFAULT_MODAL if DEFAULT_MODAL in modal_map else config.get("default_modal")
        if modal not in modal_map:
            raise ValueError(f"{path}: unknown fidelity {modal!r}; the checkpoint has {sorted(modal_map)}")
        if modal != DEFAULT_MODAL or key not in BUNDLED:
            name = f"{name}:{modal}"
    elif modal is not None:
        raise ValueError(f"{path}: a single-fidelity checkpoint; modal={modal!r} does not apply")
    model.delete_module_by_key("force_output")  # needs gradients; energies do not depend on it
    model.set_is_batch_data(True)
    model.eval()
    n_blocks = int(config["num_convolution_layer"])
    columns = [_invariant_columns(model._modules[f"{k}_equivariant_gate"].gate.irreps_out) for k in range(n_blocks)]
    embedding_dim = model._modules["onehot_to_feature_x"].irreps_out.dim
    return SevennetBackbone(
        name=name,
        module=model,
        stage_names=["embedding", *(f"interaction{k}" for k in range(1, n_blocks + 1))],
        stage_dims=[embedding_dim, *(len(c) for c in columns)],
        cutoff=float(config["cutoff"]),
        modal=modal if modal_map else None,
        known_numbers=sorted(int(z) for z in config["_type_map"]),
        invariant_columns=columns,
        default_batch_size=8,  # benchmarks/results/backbone_speed.md: 8 ~ 4 > 1, 16, 50 on CPU
    )
