"""Downstream regressors.

Roost and a CrabNet-style attention model on per-element embeddings; ElemNet and AutoML (FLAML,
auto-sklearn) on pooled vectors.
"""

from skdynemb.models.automl import AutoMLRegressor
from skdynemb.models.autosklearn import AutoSklearnRegressor
from skdynemb.models.crabnet import CrabNetRegressor
from skdynemb.models.elemnet import ElemNetRegressor
from skdynemb.models.ensemble import SeedEnsembleRegressor
from skdynemb.models.roost import RoostRegressor

__all__ = [
    "AutoMLRegressor", "AutoSklearnRegressor", "CrabNetRegressor", "ElemNetRegressor", "RoostRegressor",
    "SeedEnsembleRegressor",
]
