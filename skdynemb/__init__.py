"""skdynemb: dynamic (structure-aware) element embeddings as scikit-learn estimators."""

from importlib import import_module

__version__ = "0.1.0"

# Public names, imported on first use so `import skdynemb` stays light.
_EXPORTS = {
    "DynamicEmbeddingTransformer": "skdynemb.transformers.dynamic",
    "StaticEmbeddingTransformer": "skdynemb.transformers.static",
    "ElementFractionTransformer": "skdynemb.transformers.composition",
    "MagpieTransformer": "skdynemb.transformers.composition",
    "ElementEmbeddingUnion": "skdynemb.transformers.union",
    "Extractor": "skdynemb.extraction.engine",
    "RoostRegressor": "skdynemb.models.roost",
    "CrabNetRegressor": "skdynemb.models.crabnet",
    "ElemNetRegressor": "skdynemb.models.elemnet",
    "AutoMLRegressor": "skdynemb.models.automl",
    "AutoSklearnRegressor": "skdynemb.models.autosklearn",
    "SeedEnsembleRegressor": "skdynemb.models.ensemble",
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

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
