"""scikit-learn transformers: structures/compositions -> embeddings or composition features."""

from skdynemb.transformers.composition import ElementFractionTransformer, MagpieTransformer
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer
from skdynemb.transformers.static import StaticEmbeddingTransformer
from skdynemb.transformers.union import ElementEmbeddingUnion

__all__ = [
    "DynamicEmbeddingTransformer",
    "ElementEmbeddingUnion",
    "ElementFractionTransformer",
    "MagpieTransformer",
    "StaticEmbeddingTransformer",
]
