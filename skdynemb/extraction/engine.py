"""The :class:`Extractor`: samples -> per-element rows of a pretrained backbone's stages."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
from pymatgen.core import Composition

from skdynemb._device import resolve_device
from skdynemb.backbones import available_backbones, load_backbone
from skdynemb.backbones.base import Backbone
from skdynemb.cache import StageCache, cache_location
from skdynemb.embeddings import CompoundEmbedding
from skdynemb.errors import InvalidStructureError
from skdynemb.extraction import DEFAULT_BACKBONE
from skdynemb.extraction.batches import SampleError, extract_pooled_or_errors
from skdynemb.pooling import PooledStages
from skdynemb.provenance import backbone_identity
from skdynemb.structures import STANDARDIZE, Crystal, standardize, string_kind, to_crystal, to_crystals

#: accepted values of ``compound_features``
COMPOUND_FEATURES = (None, "bond", "bond+angle")
#: accepted values of ``cell`` (see :func:`skdynemb.structures.standardize`)
CELLS = STANDARDIZE


def resolve_stages(stage, stage_names: Sequence[str], backbone: str = "the backbone") -> list[int]:
    """Stage indices selected by ``stage`` among ``stage_names``.

    Parameters
    ----------
    stage : int, str, list of int or str, or "all"
        An index (negative counts from the last stage), a stage name (e.g. ``"alignn2"``), a list
        of those (concatenated in that order), or ``"all"``.
    stage_names : sequence of str
        The backbone's stage names, in order.
    backbone : str
        The backbone's name, for messages.

    Returns
    -------
    stages : list of int
        Non-negative stage indices, none twice.

    Raises
    ------
    ValueError
        An empty list, an unknown name, an index out of range, or a stage selected twice.
    """
    names = list(stage_names)
    n = len(names)
    if isinstance(stage, str) and stage == "all":
        return list(range(n))
    items = list(stage) if isinstance(stage, (list, tuple)) else [stage]
    if not items:
        raise ValueError("stage is an empty list")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"stage {item!r} is not a stage of {backbone!r}: {names}")
            out.append(names.index(item))
        elif isinstance(item, Integral) and not isinstance(item, bool) and -n <= item < n:
            out.append(int(item) % n)
        else:
            raise ValueError(f"stage {item!r} out of range for the {n} stages of {backbone!r}: {names}")
    if len(set(out)) != len(out):
        raise ValueError(f"stage {stage!r} selects a stage twice")
    return out


def _formula_problem(obj) -> str | None:
    """Why ``obj`` is not a structure when it is a one-line chemical formula (None otherwise)."""
    if not isinstance(obj, str) or len(obj) > 200 or string_kind(obj) != "line":
        return None
    try:
        Composition(obj)
    except Exception:  # not a formula either: to_crystal reports it
        return None
    return (
        f"{obj!r} is a chemical formula, not a structure: dynamic embeddings need crystal structures "
        "(pymatgen/ASE/jarvis objects, dicts, CIF/POSCAR text or files); for compositions use "
        "StaticEmbeddingTransformer (or MagpieTransformer / ElementFractionTransformer)"
    )


class Extractor:
    """The extraction engine: structures in, one :class:`~skdynemb.embeddings.CompoundEmbedding` out per structure.

    Every entry point of skdynemb that runs a pretrained backbone over structures goes through
    this class: :class:`~skdynemb.DynamicEmbeddingTransformer` (``extractor_``), the matminer
    :class:`~skdynemb.featurizers.DynamicEmbeddingFeaturizer`, the streaming
    :func:`~skdynemb.streaming.extract_to_file` and ``skdynemb extract``. It owns, in order:
    parsing and validation of the samples (:func:`~skdynemb.structures.to_crystal`; a chemical
    formula is refused by name), the cell each structure is mapped onto (``cell``), the checks
    against the backbone (elements, geometry guard), batching (``batch_size`` structures per
    block-diagonal forward pass), the device, cache look-ups and writes
    (:class:`~skdynemb.cache.StageCache`), the backbone's forward pass and the per-element pooling
    (:func:`~skdynemb.pooling.pool_by_element`); then it keeps the selected stages and appends
    the compound features.

    It is the extension point: code that needs the rows of many structures (a new output format,
    a service, another ML library's adapter) builds one ``Extractor`` and calls :meth:`extract`,
    rather than reaching into the transformer. A new backbone is registered with
    :func:`skdynemb.backbones.register_backbone` (or passed as a loaded
    :class:`~skdynemb.backbones.Backbone`) and is then served by every entry point.

    Construction loads the backbone (no data are read). The settings that change the rows are
    fixed here; how a call runs (workers, cache folder, progress bar) is given per call.

    Parameters
    ----------
    backbone : str or Backbone, default="alignn-ff"
        A registered backbone name (:func:`skdynemb.backbones.available_backbones`;
        :data:`skdynemb.extraction.DEFAULT_BACKBONE` by default), or a loaded
        :class:`~skdynemb.backbones.Backbone`, used as it is (then ``weights`` must be None and
        ``device`` is not applied).
    weights : str or path, optional
        Checkpoint for a named backbone (required for ``"alignn"``).
    stage : int, str, list or "all", default=-1
        Stage(s) whose rows are kept (:func:`resolve_stages`): -1 = the last.
    compound_features : {None, "bond", "bond+angle"}, default=None
        Append the structure's mean bond (and angle) feature vector to every element row, taken
        at the last selected stage (or the backbone's last bond/angle stage when it has fewer).
    cell : {None, "primitive", "niggli"}, default=None
        Cell each structure is mapped onto before its graph is built
        (:func:`skdynemb.structures.standardize`); None: as given.
    device : str, default="auto"
        Torch device (:func:`skdynemb._device.resolve_device`): ``"auto"``, ``"cpu"``, ``"cuda"``...
    batch_size : int, optional
        Structures per forward pass; None = the backbone's ``default_batch_size``.

    Attributes
    ----------
    backbone : Backbone
        The loaded backbone.
    name : str
        The backbone's name as given (for messages and settings records).
    stages : list of int
        The selected stage indices.
    batch_size : int
        Structures per forward pass (the one batch-size decision of every entry point).
    fingerprint : str
        SHA-256 of the backbone's weights.
    identity : dict
        Everything the rows depend on (:func:`skdynemb.provenance.backbone_identity`): the key
        of cache entries and of resumable extractions.
    feature_names : ndarray of str
        Names of the row features: ``<stage name>_<k>``, then ``bond_<s>_<k>`` / ``angle_<s>_<k>``.

    Examples
    --------
    >>> from skdynemb.extraction import Extractor
    >>> extractor = Extractor("cgcnn-mp-eform", stage="all", device="cpu")
    >>> compounds, errors = extractor.extract(["Fe2O3", structure])  # doctest: +SKIP
    >>> errors  # doctest: +SKIP
    [(0, None, "'Fe2O3' is a chemical formula, not a structure: ...")]
    """

    def __init__(
        self,
        backbone: str | Backbone = DEFAULT_BACKBONE,
        weights=None,
        *,
        stage=-1,
        compound_features: str | None = None,
        cell: str | None = None,
        device: str = "auto",
        batch_size: int | None = None,
    ):
        if compound_features not in COMPOUND_FEATURES:
            raise ValueError(f"compound_features must be one of {COMPOUND_FEATURES}, got {compound_features!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(backbone, Backbone):
            if weights is not None:
                raise ValueError("weights are for a backbone name; a loaded Backbone is used as it is")
            self.backbone, self.name = backbone, backbone.name
        elif isinstance(backbone, str) and backbone in available_backbones():
            self.backbone = load_backbone(backbone, weights, device=resolve_device(device))
            self.name = backbone
        else:
            raise ValueError(f"backbone={backbone!r} is not one of {available_backbones()}")
        self.compound_features = compound_features
        self.cell = cell
        self.batch_size = self.backbone.default_batch_size if batch_size is None else int(batch_size)
        self.fingerprint = self.backbone.fingerprint()
        self.identity = backbone_identity(self.backbone, self.fingerprint)
        self.stages = resolve_stages(stage, self.backbone.stage_names, self.name)
        if compound_features is not None and not self.backbone.bond_dims:
            raise ValueError(f"backbone {self.name!r} has no bond features; use compound_features=None")
        if compound_features == "bond+angle" and not self.backbone.angle_dims:
            raise ValueError(f"backbone {self.name!r} has no angle features; use compound_features='bond'")
        self.feature_names = np.asarray(self._feature_names(), dtype=object)

    def __repr__(self) -> str:
        return f"Extractor({self.name!r}, stages={self.stages}, n_features={len(self.feature_names)})"

    # ------------------------------------------------------------------ public steps
    def read(
        self, samples: Sequence, ids: Sequence | None = None, indices: Sequence[int] | None = None,
        *, stop_on_error: bool = True, n_jobs: int | None = None,
    ) -> tuple[list[Crystal], list[int], list[SampleError]]:
        """Parse and validate samples into :class:`~skdynemb.structures.Crystal` objects.

        Parameters
        ----------
        samples : sequence
            Structures in any form :func:`~skdynemb.structures.to_crystal` accepts.
        ids : sequence of str, optional
            One id per sample, for messages and results (a Crystal's own id when None).
        indices : sequence of int, optional
            Global index of each sample, for messages (default ``0..n-1``).
        stop_on_error : bool, default=True
            Stop at the first sample that cannot be read.
        n_jobs : int, optional
            joblib workers that parse chunks of samples (used when ``indices`` is None).

        Returns
        -------
        crystals : list of Crystal
            The samples that could be read, in order.
        indices : list of int
            Their global indices.
        errors : list of (int, str or None, str)
            ``(index, id, reason)`` of each sample that could not be read.
        """
        samples = list(samples)
        indices = list(range(len(samples))) if indices is None else list(indices)
        labels = [None] * len(samples) if ids is None else list(ids)
        if len(labels) != len(samples):
            raise ValueError(f"{len(labels)} ids for {len(samples)} structures")
        if len(indices) != len(samples):
            raise ValueError(f"{len(indices)} indices for {len(samples)} structures")
        labels = [s.id if sid is None and isinstance(s, Crystal) else sid for s, sid in zip(samples, labels)]
        errors: list[SampleError] = []
        for sample, index, sid in zip(samples, indices, labels):
            problem = _formula_problem(sample)
            if problem is not None:
                errors.append((index, sid, problem))
                if stop_on_error:
                    return [], [], errors
        if stop_on_error and n_jobs not in (None, 1) and indices == list(range(len(samples))):
            try:  # parsed in parallel chunks; the first sample that cannot be read stops it
                return to_crystals(samples, ids=labels, n_jobs=n_jobs), indices, []
            except InvalidStructureError as exc:
                return [], [], [(exc.index, exc.sample_id, exc.problem)]
        failed = {e[0] for e in errors}
        crystals, at = [], []
        for sample, index, sid in zip(samples, indices, labels):
            if index in failed:
                continue
            try:
                crystals.append(to_crystal(sample, index=index, id=sid))
                at.append(index)
            except InvalidStructureError as exc:
                errors.append((index, sid, exc.problem))
                if stop_on_error:
                    break
        return crystals, at, sorted(errors, key=lambda e: e[0])

    def compounds(
        self, crystals: Sequence[Crystal], indices: Sequence[int] | None = None, *, stop_on_error: bool = False,
        n_jobs: int | None = None, memory=None, progress: bool = False,
    ) -> tuple[list[CompoundEmbedding | None], list[SampleError]]:
        """Rows of crystals already read (:meth:`read`): cell, checks, cache, forward, pooling.

        Parameters
        ----------
        crystals : sequence of Crystal
            Validated crystals.
        indices : sequence of int, optional
            Their global sample indices, for messages (default ``0..n-1``).
        stop_on_error : bool, default=False
            Stop at the first crystal that fails (the rest stay uncomputed).
        n_jobs : int, optional
            joblib workers, one batch each (any joblib backend); None or 1 = this process.
        memory : None, path or joblib.Memory
            Cache folder (:mod:`skdynemb.cache`); None = no cache.
        progress : bool, default=False
            tqdm progress bar over the batches.

        Returns
        -------
        compounds : list of CompoundEmbedding or None
            One per crystal, None where it failed; features are float32 of width
            ``len(feature_names)``.
        errors : list of (int, str or None, str)
            ``(index, id, reason)`` per failed crystal, by index.
        """
        indices = list(range(len(crystals))) if indices is None else list(indices)
        errors: list[SampleError] = []
        ready, at = [], []
        for crystal, index in zip(crystals, indices):
            try:
                ready.append(standardize(crystal, self.cell, index))
                at.append(index)
            except InvalidStructureError as exc:
                errors.append((index, crystal.id, exc.problem))
                if stop_on_error:
                    return [None] * len(crystals), errors
        root = cache_location(memory)
        cache = None if root is None else StageCache(root, self.backbone, self.identity)
        pooled, failed = extract_pooled_or_errors(
            ready, self.backbone, indices=at, batch_size=self.batch_size,
            n_jobs=n_jobs, cache=cache, progress=progress, stop_on_error=stop_on_error,
        )
        errors += failed
        by_index = {}
        for p, crystal, index in zip(pooled, ready, at):
            if p is None:
                continue
            try:
                by_index[index] = self._compound(p, index, crystal.id)
            except InvalidStructureError as exc:
                errors.append((index, crystal.id, exc.problem))
        return [by_index.get(i) for i in indices], sorted(errors, key=lambda e: e[0])

    def extract(
        self, samples: Sequence, ids: Sequence | None = None, indices: Sequence[int] | None = None,
        *, stop_on_error: bool = False, n_jobs: int | None = None, memory=None, progress: bool = False,
    ) -> tuple[list[CompoundEmbedding | None], list[SampleError]]:
        """Rows of every sample that can be featurized, and why the others cannot.

        :meth:`read` then :meth:`compounds`; parameters as there.

        Parameters
        ----------
        samples : sequence
            Structures in any form :func:`~skdynemb.structures.to_crystal` accepts.
        ids : sequence of str, optional
            One id per sample, for messages (a Crystal's own id when None).
        indices : sequence of int, optional
            Global index of each sample, for messages (default ``0..n-1``).
        stop_on_error : bool, default=False
            Stop at the first sample that cannot be read or featurized.
        n_jobs : int, optional
            joblib workers for parsing and for the batches; None or 1 = this process.
        memory : None, path or joblib.Memory
            Cache folder (:mod:`skdynemb.cache`); None = no cache.
        progress : bool, default=False
            tqdm progress bar over the batches.

        Returns
        -------
        compounds : list of CompoundEmbedding or None
            One per sample, in input order; None for a sample that failed (or, with
            ``stop_on_error``, was not reached).
        errors : list of (int, str or None, str)
            ``(index, id, reason)`` of each failed sample, by index; with ``stop_on_error`` at
            most the first ones found. ``InvalidStructureError(*errors[0])`` is the error to raise.
        """
        samples = list(samples)
        indices = list(range(len(samples))) if indices is None else list(indices)
        crystals, at, errors = self.read(samples, ids, indices, stop_on_error=stop_on_error, n_jobs=n_jobs)
        if errors and stop_on_error:
            return [None] * len(samples), errors
        rows, failed = self.compounds(
            crystals, at, stop_on_error=stop_on_error, n_jobs=n_jobs, memory=memory, progress=progress
        )
        by_index = dict(zip(at, rows))
        return [by_index.get(i) for i in indices], sorted(errors + failed, key=lambda e: e[0])

    # ------------------------------------------------------------------ rows
    def _compound_stage(self, dims: list[int]) -> int:
        """Stage whose bond/angle features are appended: the last selected, clipped to availability."""
        return min(self.stages[-1], len(dims) - 1)

    def _feature_names(self) -> list[str]:
        bb = self.backbone
        names = [f"{bb.stage_names[s]}_{k}" for s in self.stages for k in range(bb.stage_dims[s])]
        if self.compound_features:
            s = self._compound_stage(bb.bond_dims)
            names += [f"bond_{s}_{k}" for k in range(bb.bond_dims[s])]
        if self.compound_features == "bond+angle":
            s = self._compound_stage(bb.angle_dims)
            names += [f"angle_{s}_{k}" for k in range(bb.angle_dims[s])]
        return names

    def _compound(self, p: PooledStages, index: int, sample_id) -> CompoundEmbedding:
        rows = [p.stages[s] for s in self.stages]
        if self.compound_features:
            rows.append(self._compound_row(p.bond, "bond", len(p.elements), index, sample_id))
        if self.compound_features == "bond+angle":
            rows.append(self._compound_row(p.angle, "angle", len(p.elements), index, sample_id))
        features = np.concatenate(rows, axis=1).astype(np.float32)
        return CompoundEmbedding(p.elements, np.asarray(p.fractions, dtype=np.float64), features, sample_id)

    def _compound_row(self, stages, kind: str, n_rows: int, index: int, sample_id) -> np.ndarray:
        """The structure's mean bond/angle vector, repeated for each element row."""
        if stages is None:
            raise InvalidStructureError(
                index, sample_id,
                f"has no {kind}s in backbone {self.name!r} (e.g. no bond pair within its angle cutoff); "
                f"use compound_features={'bond' if kind == 'angle' else None!r} or drop this structure",
            )
        return np.tile(stages[self._compound_stage(stages)], (n_rows, 1))
