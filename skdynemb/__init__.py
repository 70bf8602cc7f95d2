"""skdynemb: dynamic (structure-aware) element embeddings as scikit-learn estimators."""

from skdynemb._lazy import lazy_exports

__version__ = "0.1.0"

# Public names, imported on first use so `import skdynemb` stays light.
_EXPORTS = {
    "DynamicEmbeddingTransformer": "skdynemb.transformers.dynamic",
    "StaticEmbeddingTransformer": "skdynemb.transformers.static",
    "ElementFractionTransformer": "skdynemb.transformers.composition",
    "MagpieTransformer": "skdynemb.transformers.composition",
    "RoostRegressor": "skdynemb.models.roost",
    "ElemNetRegressor": "skdynemb.models.elemnet",
    "AutoMLRegressor": "skdynemb.models.automl",
    "AutoSklearnRegressor": "skdynemb.models.autosklearn",
    "ElementEmbeddings": "skdynemb.embeddings",
    "CompoundEmbedding": "skdynemb.embeddings",
    "Crystal": "skdynemb.structures",
    "to_crystal": "skdynemb.structures",
    "to_crystals": "skdynemb.structures",
    "InvalidStructureError": "skdynemb.errors",
    "InvalidCompositionError": "skdynemb.errors",
    "InvalidSampleError": "skdynemb.errors",
    "load_backbone": "skdynemb.backbones",
    "available_backbones": "skdynemb.backbones",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
