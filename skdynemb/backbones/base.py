"""The small interface every structure-aware backbone implements.

A backbone turns a batch of :class:`~skdynemb.structures.Crystal` into per-atom hidden
vectors at each of its *stages* (e.g. ALIGNN: embedding + 4 ALIGNN + 4 GCN layers), plus,
where it has them, compound-level mean bond and angle features per stage.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np
import torch

from skdynemb._batches import batched
from skdynemb.errors import InvalidStructureError

if TYPE_CHECKING:
    from skdynemb.structures import Crystal


@contextmanager
def capture_outputs(modules: Sequence[torch.nn.Module]):
    """Collect each module's forward output (keyed by position) while the context is open.

    Parameters
    ----------
    modules : sequence of torch.nn.Module
        The modules whose outputs to record (forward hooks, removed on exit).

    Yields
    ------
    outputs : dict of int to torch.Tensor
        Filled during forward passes: ``outputs[k]`` is the last output of ``modules[k]``.
    """
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _in, out, k=k: outputs.__setitem__(k, out))
        for k, m in enumerate(modules)
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class StageOutput:
    """Hidden features of one structure.

    Attributes
    ----------
    atom : list of ndarray
        One (n_atoms, d_s) float32 array per stage, rows in site order.
    bond : list of ndarray or None
        Per stage, the (d_b,) float32 mean over the structure's bonds (edges) of the bond
        features; None if the backbone has no bond features.
    angle : list of ndarray or None
        The same for angle (line-graph) features; may be shorter than ``atom`` (ALIGNN updates
        angles only in its ALIGNN layers) or None.
    """

    atom: list[np.ndarray]
    bond: list[np.ndarray] | None = None
    angle: list[np.ndarray] | None = None


def atom_rows(stages: Sequence[torch.Tensor], sizes: Sequence[int]) -> list[list[np.ndarray]]:
    """Split a batch's per-stage atom features into each structure's rows.

    Parameters
    ----------
    stages : sequence of torch.Tensor
        One (sum(sizes), d_s) tensor per stage, the structures' atoms one after the other.
    sizes : sequence of int
        Atoms of each structure, in batch order.

    Returns
    -------
    rows : list of list of ndarray
        Per structure, one float32 (n_atoms, d_s) array per stage (copies, off the device).
    """
    per_stage = [torch.split(s.float().cpu(), list(sizes)) for s in stages]
    return [[stage[i].numpy().copy() for stage in per_stage] for i in range(len(sizes))]


@dataclass
class Backbone:
    """Base class: a pretrained GNN exposed as a stage extractor.

    Everything downstream (pooling, extraction, the cache, the transformers, the CLI) relies on
    the contract below and on nothing else of a backbone; a new backbone keeps all of it.

    **Building.** A backbone lives in a module with a function ``load(weights=None) ->
    Backbone``: it reads ``weights`` (a checkpoint file or folder; ``None`` = the module's own
    default), rejects a file that is not such a checkpoint with a ``ValueError`` naming the
    file, and returns the subclass instance with ``module`` (the ``torch.nn.Module``) on the
    CPU. :func:`skdynemb.backbones.load_backbone` then checks the normalisation statistics,
    calls ``module.eval()`` and moves it to the requested device with :meth:`to`. Nothing else
    may be needed to make ``forward_stages`` work.

    **Registration.** One line in ``_REGISTRY`` of :mod:`skdynemb.backbones` (name -> module,
    default weights), or :func:`skdynemb.backbones.register_backbone` at run time for a backbone
    outside the package. Every shipped name must also be listed in
    ``tests/backbones/test_contract.py`` (``SHIPPED``, or ``ALIASES`` for a second name of the
    same weights); ``test_every_registered_backbone_is_covered`` fails otherwise, and the
    contract tests there (stage shapes and dtype, batch = one at a time, repeatability,
    site order, element rows identical before message passing) then run on it.

    **Stages.** ``stage_names[s]`` names stage ``s`` and ``stage_dims[s]`` is its width ``d_s``
    (features per atom); stage 0 is ``"embedding"``, the per-element input embedding before any
    message passing (identical for every atom of one element), then one stage per layer in
    forward order. Names are what users pass as ``layer=`` and what feature names are built
    from, so they are unique and stable across versions. ``bond_dims`` / ``angle_dims`` are the
    widths of the optional compound-level bond and angle features per stage (``None`` when the
    backbone has none; ``angle_dims`` may be shorter than ``stage_dims``).

    **forward_stages(crystals)** runs exactly the batch it is given (one forward pass, no
    re-chunking: batching is the caller's decision, see ``default_batch_size``), in eval mode
    without gradients, and returns one :class:`StageOutput` per crystal, in input order (an
    empty list for an empty batch). ``atom[s]`` is an ``(n_sites, stage_dims[s])`` float32
    array in the crystal's site order; the features are the network's hidden activations
    (dimensionless, in whatever scale the network learned; positions enter in Å as
    :class:`~skdynemb.structures.Crystal` gives them). ``bond`` / ``angle``, where present,
    are per stage the ``(d,)`` float32 mean over the structure's bonds / angles, ``None``
    otherwise (a structure without angles may have ``angle=None`` in a batch where others
    have them). A crystal's rows do not depend on the other crystals of its batch beyond
    float32 reordering, the same input gives the same bits, and the result is finite for a
    valid structure (non-finite output is reported as that structure's error).

    **check_elements(crystal, index)** raises, before any work, an error naming sample
    ``index`` (global index and id) when the crystal has an element the backbone has no
    embedding for: an :class:`~skdynemb.errors.InvalidStructureError`, or a ``ValueError``
    that the extraction re-raises as one. It returns ``None`` otherwise. ``forward_stages``
    checks its crystals too (it is also called directly). The base class implements it from
    two hooks: ``_covers(z)`` (whether the network has an input row for atomic number ``z``;
    by default every ``z``) and ``_coverage()`` (the covered elements in words, for the
    message), with ``_element_input`` naming what the network lacks (``"embedding"``).

    **Errors.** A problem of one structure (unknown element, no neighbours within the cutoff, a
    graph that cannot be built) is raised as :class:`~skdynemb.errors.InvalidStructureError`
    (or another exception that :func:`skdynemb.extraction.is_sample_fault` accepts:
    ``ValueError``, ``RuntimeError`` without "CUDA", ``IndexError``, ``KeyError``,
    ``ArithmeticError``, ``AssertionError``). The extraction then runs the batch again one
    structure at a time and attributes the failure to the structure that fails alone, so
    ``skip_invalid`` can leave exactly it out. Out-of-memory and device errors must
    propagate unchanged: they become :class:`~skdynemb.errors.BackboneBatchError` for the
    whole batch. Nothing is silently turned into NaN or zeros.

    **predict_batch(crystals, first)** (optional) runs the network's own head over exactly the
    batch it is given (one forward pass) and returns one prediction per crystal, in the units of
    the checkpoint's target; ``first`` is the global index of ``crystals[0]``, for messages.
    :meth:`predict` cuts its input into batches with :func:`skdynemb._batches.batched`, as the
    extraction does, and calls it once per batch.

    **default_batch_size** is the number of structures per forward pass that runs fastest on
    CPU; the transformers and :meth:`predict` use it when ``batch_size=None``. It does not change
    the rows.

    **fingerprint()** is the SHA-256 over ``name`` and every tensor of
    ``module.state_dict()``; override it only to add weights that live outside the state
    dict. Together with :func:`skdynemb.provenance.backbone_identity` it keys the cache and
    the resume checks: that identity holds the class, every dataclass field of the backbone
    except ``module``, ``device``, ``batch_size`` and ``default_batch_size`` (so any field that
    changes a structure's rows, e.g. a graph rule or an atom-feature table, must be a
    dataclass field: numbers, strings, arrays/tensors (hashed), dataclasses or lists of them),
    the module's class and
    configuration, its non-persistent buffers and the package versions. A setting that changes
    the rows but is kept outside the dataclass fields would let the cache serve stale rows.

    Attributes
    ----------
    name : str
        Registry name (e.g. ``"cgcnn-mp-eform"``); used in messages and the fingerprint.
    module : torch.nn.Module
        The network, in eval mode.
    stage_names : list of str
        Stage names, ``"embedding"`` first.
    stage_dims : list of int
        Width of each stage's per-atom features.
    bond_dims, angle_dims : list of int or None
        Width of the mean bond / angle features per stage; None without them.
    device : torch.device
        Where ``module`` lives (set by :meth:`to`).
    default_batch_size : int
        Structures per forward pass when the caller does not say.
    """

    name: str
    module: torch.nn.Module
    stage_names: list[str]
    stage_dims: list[int]
    bond_dims: list[int] | None = None
    angle_dims: list[int] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: structures per forward pass that runs fastest on CPU (the transformer's batch_size=None)
    default_batch_size: int = 64
    #: what the network has per element, as :meth:`check_elements` names it when one is missing
    _element_input: ClassVar[str] = "embedding"

    def to(self, device: str | torch.device) -> "Backbone":
        """Move the network to ``device``.

        Parameters
        ----------
        device : str or torch.device
            Target device.

        Returns
        -------
        self : Backbone
            The backbone, now on ``device``.
        """
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def fingerprint(self) -> str:
        """SHA-256 over the backbone's name and every weight, for cache keys.

        Returns
        -------
        digest : str
            64 hexadecimal digits.
        """
        h = hashlib.sha256(self.name.encode())
        for key, tensor in sorted(self.module.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def check_elements(self, crystal: "Crystal", index: int) -> None:
        """Raise an error naming sample ``index`` if it has an element the backbone lacks (see the class).

        Parameters
        ----------
        crystal : Crystal
            The structure.
        index : int
            Its global sample index, for the message.

        Raises
        ------
        InvalidStructureError
            Naming the sample, the atomic numbers the network has no input for (ascending) and
            the elements it covers.
        """
        bad = [z for z in sorted({int(v) for v in crystal.numbers}) if not self._covers(z)]
        if bad:
            raise InvalidStructureError(
                index, crystal.id,
                f"{self.name} has no {self._element_input} for atomic number(s) {bad} ({self._coverage()})",
            )

    def _covers(self, z: int) -> bool:
        """Whether the network has an input row (embedding) for atomic number ``z``; here, for every one."""
        return True

    def _coverage(self) -> str:
        """The elements the network covers, in words, for :meth:`check_elements`' message.

        A backbone that overrides :meth:`_covers` overrides this too.
        """
        raise NotImplementedError(
            f"{type(self).__name__} restricts its elements (_covers) without naming them (_coverage)"
        )

    def forward_stages(self, crystals: Sequence["Crystal"]) -> list[StageOutput]:
        """Run exactly this batch (one block-diagonal forward, eval mode, no grad), split per structure.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.

        Returns
        -------
        outputs : list of StageOutput
            One per crystal, in input order; float32 arrays (see the class docstring).
        """
        raise NotImplementedError

    def predict(self, crystals: Sequence["Crystal"], batch_size: int | None = None) -> np.ndarray:
        """The network's own prediction per crystal, in forward batches of exactly ``batch_size``.

        Parameters
        ----------
        crystals : sequence of Crystal
            The structures.
        batch_size : int, optional
            Structures per forward pass (the last batch may be shorter); default
            :attr:`default_batch_size`.

        Returns
        -------
        predictions : ndarray of shape (n_crystals,)
            In the units of the checkpoint's target (e.g. eV/atom for formation energy).
        """
        size = self.default_batch_size if batch_size is None else batch_size
        parts, first = [], 0
        for batch in batched(crystals, size):
            parts.append(self.predict_batch(batch, first))
            first += len(batch)
        return np.concatenate(parts) if parts else self.predict_batch([], 0)

    def predict_batch(self, crystals: Sequence["Crystal"], first: int = 0) -> np.ndarray:
        """The network's own prediction for exactly this batch (one forward pass).

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.
        first : int
            Global sample index of ``crystals[0]``, for messages.

        Returns
        -------
        predictions : ndarray of shape (len(crystals),)
            In the units of the checkpoint's target.
        """
        raise NotImplementedError(f"backbone {self.name!r} exposes no prediction head")
