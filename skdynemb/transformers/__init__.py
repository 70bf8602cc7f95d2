"""scikit-learn transformers: structures/compositions -> embeddings."""

from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

__all__ = ["DynamicEmbeddingTransformer"]
