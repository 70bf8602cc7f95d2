"""Downstream regressors: Roost on per-element embeddings; ElemNet and AutoML (FLAML, auto-sklearn) on pooled vectors."""

from skdynemb.models.automl import AutoMLRegressor
from skdynemb.models.autosklearn import AutoSklearnRegressor
from skdynemb.models.elemnet import ElemNetRegressor
from skdynemb.models.roost import RoostRegressor

__all__ = ["AutoMLRegressor", "AutoSklearnRegressor", "ElemNetRegressor", "RoostRegressor"]
