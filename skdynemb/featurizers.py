"""matminer adapter: the atom-averaged dynamic embedding as a ``BaseFeaturizer``."""

from __future__ import annotations

import traceback

import numpy as np
from matminer.featurizers.base import BaseFeaturizer

from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer


class DynamicEmbeddingFeaturizer(BaseFeaturizer):
    """Atom-averaged hidden features of a pretrained GNN for one structure per row.

    ``featurize_dataframe(df, "structure")`` runs the whole column through one batched
    extractor (``featurize_many`` is overridden), so no model is spawned per row or process.
    Parameters are those of :class:`~skdynemb.DynamicEmbeddingTransformer` (pooling is "mean").
    """

    def __init__(self, backbone="cgcnn-mp-eform", weights=None, layer=-1, compound_features=None,
                 device="auto", batch_size=None, memory=None):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.compound_features = compound_features
        self.device = device
        self.batch_size = batch_size
        self.memory = memory

    def fit(self, X=None, y=None, **kwargs):
        """Load the backbone (no data needed)."""
        self.transformer_ = DynamicEmbeddingTransformer(
            backbone=self.backbone, weights=self.weights, layer=self.layer, pooling="mean",
            compound_features=self.compound_features, device=self.device, batch_size=self.batch_size,
            memory=self.memory, progress=False,
        ).fit()
        return self

    def _fitted(self) -> DynamicEmbeddingTransformer:
        if not hasattr(self, "transformer_"):
            self.fit()
        return self.transformer_

    def featurize(self, structure):
        """Feature vector (list of floats) of one structure."""
        return self._fitted().transform([structure])[0].tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Featurize all entries in batches; with ``ignore_errors`` failing rows become NaN.

        With ``ignore_errors=False`` the first bad structure raises, naming its row index.
        """
        structures = [e[0] if isinstance(e, (tuple, list, np.ndarray)) else e for e in entries]
        transformer = self._fitted()
        transformer.set_params(progress=bool(pbar))
        try:
            rows = [list(r) for r in transformer.transform(structures)]
            errors = [np.nan] * len(rows)
        except Exception:
            if not ignore_errors:
                raise
            rows, errors = self._one_by_one(structures)
        if return_errors:
            return [r + [e] for r, e in zip(rows, errors)]
        return rows

    def _one_by_one(self, structures):
        """Fallback after a failed batch: keep good rows, NaN (+ traceback) for bad ones."""
        n = len(self.feature_labels())
        rows, errors = [], []
        for s in structures:
            try:
                rows.append(self.featurize(s))
                errors.append(np.nan)
            except Exception:
                rows.append([np.nan] * n)
                errors.append(traceback.format_exc())
        return rows, errors

    def feature_labels(self):
        return [f"dynemb_{name}" for name in self._fitted().get_feature_names_out()]

    def citations(self):
        """BibTeX entries: the method's paper, then the works behind ``backbone`` (network, training data)."""
        from skdynemb.citations import citations

        return citations(self.backbone)

    def implementors(self):
        return ["skdynemb developers"]
