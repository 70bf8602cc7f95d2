"""matminer adapter: the atom-averaged dynamic embedding as a ``BaseFeaturizer``."""

from __future__ import annotations

import numpy as np
from matminer.featurizers.base import BaseFeaturizer

from skdynemb.errors import InvalidStructureError
from skdynemb.extraction import DEFAULT_BACKBONE
from skdynemb._deprecation import NOT_GIVEN, renamed_parameter
from skdynemb.pooling import mean_rows
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer


class DynamicEmbeddingFeaturizer(BaseFeaturizer):
    """Atom-averaged hidden features of a pretrained GNN for one structure per row.

    ``featurize_dataframe(df, "structure")`` runs the whole column through one batched
    :class:`~skdynemb.extraction.Extractor` (``featurize_many`` is overridden), so no model is
    spawned per row or process. Parameters are those of
    :class:`~skdynemb.DynamicEmbeddingTransformer` (pooling is "mean"), with the same default
    backbone, :data:`skdynemb.extraction.DEFAULT_BACKBONE` (``"alignn-ff"``: best downstream; a
    60 MB one-time weights download, ~25x slower than CGCNN); ``backbone="cgcnn-mp-eform"`` is
    the fast option shipped inside the package, with no download. ``layer`` and ``standardize``
    are the deprecated names of ``stage`` and ``cell`` (a FutureWarning; removed in 0.3).

    Parameters
    ----------
    backbone : str, default="alignn-ff"
        Registered backbone name (:func:`skdynemb.backbones.available_backbones`).
    weights : str or path, optional
        Checkpoint for the backbone (required for ``"alignn"``).
    stage : int, str, list or "all", default=-1
        Stage(s) to read: index (-1 = last), stage name, a list of those (concatenated), or ``"all"``.
    compound_features : {None, "bond", "bond+angle"}
        Append the structure's mean bond (and angle) features.
    cell : {None, "primitive", "niggli"}, default=None
        Cell each structure is mapped onto before its graph is built
        (:func:`skdynemb.structures.standardize`); None: as given.
    device : str, default="auto"
        ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    batch_size : int, optional
        Structures per forward pass; None = the backbone's ``default_batch_size``.
    memory : None, path or joblib.Memory
        Cache folder for per-structure results (:mod:`skdynemb.cache`).
    layer : int, str, list or "all"
        Deprecated since 0.2 (removed in 0.3): the old name of ``stage``.
    standardize : {None, "primitive", "niggli"}
        Deprecated since 0.2 (removed in 0.3): the old name of ``cell``.
    """

    def __init__(self, backbone=DEFAULT_BACKBONE, weights=None, stage=-1, compound_features=None,
                 cell=None, device="auto", batch_size=None, memory=None, layer=NOT_GIVEN, standardize=NOT_GIVEN):
        self.backbone = backbone
        self.weights = weights
        self.stage = stage
        self.compound_features = compound_features
        self.cell = cell
        self.device = device
        self.batch_size = batch_size
        self.memory = memory
        self.layer = layer
        self.standardize = standardize

    def fit(self, X=None, y=None, **kwargs):
        """Load the backbone (no data needed).

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.
        **kwargs : dict
            Ignored (matminer passes fit options through).

        Returns
        -------
        self : DynamicEmbeddingFeaturizer
            The fitted featurizer (``transformer_`` set).
        """
        stage = renamed_parameter(self.stage, self.layer, "stage", "layer", default=-1)
        cell = renamed_parameter(self.cell, self.standardize, "cell", "standardize", default=None)
        self.transformer_ = DynamicEmbeddingTransformer(
            backbone=self.backbone, weights=self.weights, stage=stage, pooling="mean",
            compound_features=self.compound_features, cell=cell, device=self.device,
            batch_size=self.batch_size, memory=self.memory, progress=False,
        ).fit()
        return self

    def _fitted(self) -> DynamicEmbeddingTransformer:
        if not hasattr(self, "transformer_"):
            self.fit()
        return self.transformer_

    def featurize(self, structure):
        """Feature vector (list of floats) of one structure.

        Parameters
        ----------
        structure : Structure or structure-like
            One structure in any form :func:`~skdynemb.structures.to_crystal` accepts.

        Returns
        -------
        features : list of float
            One value per :meth:`feature_labels` entry.
        """
        return self._fitted().transform([structure])[0].tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Featurize all entries in batches.

        With ``ignore_errors=False`` the first structure that cannot be featurized raises
        :class:`~skdynemb.errors.InvalidStructureError` naming its row index. With
        ``ignore_errors=True`` exactly those structures get NaN rows (and, with
        ``return_errors``, the reason in the last column); the other rows are computed as usual.
        Failures that are not one structure's fault (e.g. out of memory) raise either way.

        Parameters
        ----------
        entries : sequence
            Structures, or tuples / lists / arrays whose first item is the structure (matminer's rows).
        ignore_errors : bool, default=False
            Give NaN rows for structures that cannot be featurized instead of raising.
        return_errors : bool, default=False
            Append each row's error message (NaN when none) as a last column.
        pbar : bool, default=True
            tqdm progress bar.

        Returns
        -------
        rows : list of list of float
            One row per entry, ``len(feature_labels())`` values (plus the error column with
            ``return_errors``).

        Raises
        ------
        InvalidStructureError
            With ``ignore_errors=False``, for the first structure that cannot be featurized.
        """
        structures = [e[0] if isinstance(e, (tuple, list, np.ndarray)) else e for e in entries]
        transformer = self._fitted()
        compounds, errors = transformer.extractor_.extract(
            structures, stop_on_error=not ignore_errors, memory=transformer.memory, progress=bool(pbar)
        )
        if errors and not ignore_errors:
            raise InvalidStructureError(*errors[0])
        reasons = {i: str(InvalidStructureError(i, sid, why)) for i, sid, why in errors}
        n = len(self.feature_labels())
        means = iter(mean_rows([c for i, c in enumerate(compounds) if i not in reasons], n).tolist())
        rows = [[np.nan] * n if i in reasons else next(means) for i in range(len(compounds))]
        if return_errors:
            return [r + [reasons.get(i, np.nan)] for i, r in enumerate(rows)]
        return rows

    def feature_labels(self):
        """Names of the columns ``featurize`` fills, in order: ``dynemb_<stage>_<i>``.

        Returns
        -------
        labels : list of str
            One per feature, unique (e.g. ``dynemb_conv4_0`` .. ``dynemb_conv4_63`` for CGCNN's
            last stage). Loads the backbone if needed; no data are read.
        """
        return [f"dynemb_{name}" for name in self._fitted().get_feature_names_out()]

    def citations(self):
        """Works to cite for these features, as matminer expects them.

        Returns
        -------
        citations : list of str
            BibTeX entries: the method's paper, then the works behind ``backbone`` (network and
            training data); see :func:`skdynemb.citations.citations`.
        """
        from skdynemb.citations import citations

        return citations(self.backbone)

    def implementors(self):
        """Who implemented this featurizer, as matminer expects it.

        Returns
        -------
        implementors : list of str
            Names (the authors listed in the package metadata and ``CITATION.cff``).
        """
        return ["skdynemb developers"]
