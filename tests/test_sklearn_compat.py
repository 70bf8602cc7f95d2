"""One common test: every estimator against scikit-learn's estimator checks.

The estimators are discovered, not listed: every class deriving from scikit-learn's
``BaseEstimator`` with a public name in a public module of skdynemb (as
``sklearn.utils.discovery.all_estimators`` finds scikit-learn's own). Each one found must have
its settings below, or an exact reason why it is only API-checked or not checked here, so a new
estimator fails this file until it is placed. Regressors take 2-D numeric X and run the full
``check_estimator`` suite. Transformers whose
input is structures or compositions declare ``input_tags.two_d_array=False`` (scikit-learn then
skips its array-based checks, which would feed them random floats); for them this file runs
every data-independent API check plus a fit/transform contract on real samples.
"""

import importlib
import inspect
import pickle
import pkgutil

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import parametrize_with_checks

import skdynemb
from skdynemb import (
    AutoMLRegressor,
    CrabNetRegressor,
    DynamicEmbeddingTransformer,
    ElementEmbeddingUnion,
    ElementFractionTransformer,
    ElemNetRegressor,
    MagpieTransformer,
    RoostRegressor,
    SeedEnsembleRegressor,
    StaticEmbeddingTransformer,
)
from skdynemb.featurizers import DynamicEmbeddingFeaturizer
from skdynemb.models.autosklearn import AutoSklearnRegressor
from skdynemb.models.batching import CompoundBatchNet


def discover_estimators() -> set[type]:
    """Every BaseEstimator subclass with a public name defined in a public module of skdynemb
    (modules with a ``._`` part, like ``models._common``'s base classes, are skipped)."""
    found = set()
    for module in pkgutil.walk_packages(skdynemb.__path__, "skdynemb."):
        if "._" in module.name:  # private modules, and __main__ (it runs the CLI)
            continue
        for name, obj in vars(importlib.import_module(module.name)).items():
            if (
                inspect.isclass(obj) and issubclass(obj, BaseEstimator) and obj.__module__ == module.name
                and not name.startswith("_") and not inspect.isabstract(obj)
            ):
                found.add(obj)
    return found


REGRESSORS = [
    RoostRegressor(max_epochs=3, batch_size=32, random_state=0),
    # the estimator machinery at small widths (the paper-sized network is tested in tests/models/test_crabnet.py)
    CrabNetRegressor(d_model=32, n_heads=2, dim_feedforward=64, out_hidden=(64, 32), lr=1e-3, max_epochs=10,
                     batch_size=32, random_state=0),
    # The estimator machinery is what is checked here; a 3-layer stack with lr 1e-3 reaches
    # check_regressors_train's R² > 0.5 in seconds, where ElemNet's 17 layers at lr 1e-4 need
    # minutes (the full architecture is tested in tests/models/test_elemnet.py).
    ElemNetRegressor(blocks=((64, 2, 0.2), (32, 1, 0.1)), lr=1e-3, max_epochs=40, random_state=0),
    # a search ended by max_iter, not by the clock, is reproducible (check_regressor_data_not_an_array)
    AutoMLRegressor(time_budget=-1, max_iter=4, random_state=0),
    # the meta-estimator's machinery (seeded clones, mean, tags, n_features_in_) around a fast Roost
    SeedEnsembleRegressor(RoostRegressor(max_epochs=3, batch_size=32, random_state=0), n_seeds=2),
]

#: discovered estimators that only get the data-independent API checks, and why
API_CHECKS_ONLY = {
    # a matminer BaseFeaturizer: featurize/featurize_many, no NotFittedError (it fits on first
    # use); its behaviour is tested in tests/test_featurizers.py
    DynamicEmbeddingFeaturizer: DynamicEmbeddingFeaturizer(),
}

#: discovered estimators not checked here -> why
NOT_CHECKED = {
    AutoSklearnRegressor: (
        "every fit is a subprocess in auto-sklearn's own Python 3.9 environment (>= ~20 s); "
        "tests/models/test_automl_autosklearn.py runs check_estimator on it with the fitting checks skipped"
    ),
    CompoundBatchNet: (
        "the skorch net RoostRegressor builds (module and criterion are required constructor "
        "arguments); checked through RoostRegressor"
    ),
}

# check name -> why it cannot pass (kept empty unless a model genuinely cannot). The neural
# regressors pass check_methods_subset_invariance by construction: they evaluate in float64
# (skdynemb.models._common.call_in_float64), where float32 products rounded with the batch's size
# (up to 3e-7 relative, over the check's rtol of 1e-7 on some data and CPUs); see
# tests/models/test_skorch_conventions.py::test_a_prediction_does_not_depend_on_the_rest_of_its_batch.
EXPECTED_FAILED = {
    "RoostRegressor": {},
    "CrabNetRegressor": {},
    "ElemNetRegressor": {},
    "AutoMLRegressor": {},
    "SeedEnsembleRegressor": {},
}


def _expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(REGRESSORS, expected_failed_checks=_expected_failed)
def test_regressors_pass_check_estimator(estimator, check):
    check(estimator)


def _structures():
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    licoo2 = Structure.from_spacegroup(
        "R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2604]]
    )
    return [nacl, licoo2]


# the dynamic ones with the default backbone (alignn-ff): ~1 s each on two structures
STRUCTURE_TRANSFORMERS = [
    DynamicEmbeddingTransformer(pooling="mean", progress=False, device="cpu"),
    DynamicEmbeddingTransformer(pooling="element", progress=False, device="cpu"),
    StaticEmbeddingTransformer(pooling="mean"),
    StaticEmbeddingTransformer(pooling="element"),
    ElementFractionTransformer(),
    MagpieTransformer(),
    # rows of two sources joined per element: the fast shipped backbone + a static table
    ElementEmbeddingUnion([("cgcnn", DynamicEmbeddingTransformer("cgcnn-mp-eform", progress=False, device="cpu")),
                           ("megnet", StaticEmbeddingTransformer("megnet16"))]),
    ElementEmbeddingUnion([("cgcnn", DynamicEmbeddingTransformer("cgcnn-mp-eform", progress=False, device="cpu")),
                           ("megnet", StaticEmbeddingTransformer("megnet16"))], pooling="mean"),
]


def test_every_discovered_estimator_is_placed():
    regressors = {type(e) for e in REGRESSORS}
    transformers = {type(e) for e in STRUCTURE_TRANSFORMERS}
    groups = [regressors, transformers, set(API_CHECKS_ONLY), set(NOT_CHECKED)]
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "an estimator is placed twice"
    assert discover_estimators() == set().union(*groups)


API_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
]


@pytest.mark.parametrize("estimator", STRUCTURE_TRANSFORMERS + list(API_CHECKS_ONLY.values()), ids=repr)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_transformers_pass_api_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", STRUCTURE_TRANSFORMERS, ids=repr)
def test_transformers_fit_transform_contract(request, estimator):
    if isinstance(estimator, DynamicEmbeddingTransformer):
        request.getfixturevalue("alignn_ff_weights")  # the default backbone's; skips when not in the cache
    X = _structures()
    est = clone(estimator)
    with pytest.raises(NotFittedError):
        est.transform(X)
    params = est.get_params()
    assert est.fit(X) is est
    assert est.get_params() == params  # fit never changes what the user gave
    out = est.transform(X)
    again = pickle.loads(pickle.dumps(est)).transform(X)
    if isinstance(out, np.ndarray):
        assert out.shape == (2, len(est.get_feature_names_out()))
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(est.fit_transform(X), out)
    else:
        assert len(out) == 2 and out == again
