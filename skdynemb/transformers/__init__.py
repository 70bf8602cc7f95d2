"""scikit-learn transformers: structures/compositions -> embeddings or composition features."""

from skdynemb.transformers.composition import ElementFractionTransformer, MagpieTransformer
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer
from skdynemb.transformers.static import StaticEmbeddingTransformer

__all__ = [
    "DynamicEmbeddingTransformer",
    "ElementFractionTransformer",
    "MagpieTransformer",
    "StaticEmbeddingTransformer",
]
