"""Property-based test of bad input (issue 31): random structures, ids and targets, degenerate ones
included (tiny lattices, collapsed or coinciding atoms, flat cells, NaN / None / string / huge
targets). Whatever is generated, the pipeline either raises a clear error naming a bad sample
(its global index, and its id when it has one) or returns finite output of the right shape.

Elements and the lattice parameters' ranges are those of real crystals (plus degenerate extremes);
the structures are built with pymatgen and run through the shipped CGCNN (MP formation energy).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from skdynemb import DynamicEmbeddingTransformer, ElemNetRegressor  # noqa: E402
from skdynemb.errors import InvalidSampleError  # noqa: E402

#: elements of common real crystals (all in CGCNN's table)
ELEMENTS = ["H", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si",
            "S", "Cl", "K", "Ca", "Ti", "Fe", "Co", "Cu", "Zn", "Ba"]
FLOAT32_MAX = float(np.finfo(np.float32).max)

real_lengths, tiny_lengths = st.floats(2.5, 9.0), st.floats(0.15, 1.0)  # Å
angles = st.floats(55.0, 125.0)  # degrees
fractions = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def structures(draw):
    """A pymatgen Structure; sometimes atoms placed on (or 0.01-0.2 Å from) another atom."""
    degenerate = draw(st.integers(0, 4)) == 0  # one structure in five has a tiny lattice
    a, b, c = (draw(tiny_lengths if degenerate and k == 0 or draw(st.booleans()) and degenerate else real_lengths)
               for k in range(3))
    alpha, beta, gamma = draw(angles), draw(angles), draw(angles)
    lattice = Lattice.from_parameters(a, b, c, alpha, beta, gamma)
    hypothesis.assume(lattice.volume > 1e-6 and np.isfinite(lattice.matrix).all())
    n = draw(st.integers(1, 5))
    species = [draw(st.sampled_from(ELEMENTS)) for _ in range(n)]
    coords = [[draw(fractions) for _ in range(3)] for _ in range(n)]
    if n > 1 and draw(st.integers(0, 3)) == 0:  # collapse the last atom onto the first
        shift = draw(st.floats(0.0, 0.2)) / max(a, b, c)
        coords[-1] = [x + shift for x in coords[0]]
    return Structure(lattice, species, coords)


ids = st.one_of(st.none(), st.text(min_size=1, max_size=8))
targets = st.one_of(
    st.floats(-10.0, 10.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, "1", 1.7e308, -1.7e308, float("nan"), float("inf")]),
)


def _bad_targets(y: list) -> set[int]:
    """Indices of targets that are not finite numbers within the float32 range."""
    bad = set()
    for i, v in enumerate(y):
        ok = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or abs(v) > FLOAT32_MAX:
            bad.add(i)
    return bad


@pytest.fixture(scope="module")
def cgcnn():
    return DynamicEmbeddingTransformer("cgcnn-mp-eform", pooling="mean", progress=False).fit()


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_input_gives_a_named_error_or_finite_output(cgcnn, data):
    samples = data.draw(st.lists(structures(), min_size=1, max_size=4), label="structures")
    labels = data.draw(st.lists(ids, min_size=len(samples), max_size=len(samples)), label="ids")
    labels = [f"{k}:{s}" if s is not None else None for k, s in enumerate(labels)]  # unique where given
    X = pd.Series(samples, index=[s if s is not None else f"row{k}" for k, s in enumerate(labels)], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # close contacts, parser notes: warnings, not the point here
        try:
            rows = cgcnn.transform(X)
        except InvalidSampleError as exc:
            assert 0 <= exc.index < len(samples)
            assert str(exc).startswith(f"sample {exc.index} (id={X.index[exc.index]!r}): ")
            assert exc.problem  # says what is wrong
            hypothesis.event("structure refused")
            return
    assert rows.shape == (len(samples), 64) and rows.dtype == np.float32
    assert np.isfinite(rows).all()

    y = data.draw(st.lists(targets, min_size=len(samples), max_size=len(samples)), label="y")
    bad = _bad_targets(y)
    model = ElemNetRegressor(max_epochs=1, batch_size=4, validation_fraction=None, random_state=0)
    if bad:
        with pytest.raises(ValueError, match=r"^sample \d+: target ") as err:
            model.fit(rows, y)
        assert int(str(err.value).split()[1].rstrip(":")) in bad  # names a sample whose target is bad
        hypothesis.event("target refused")
        return
    hypothesis.event("fitted")
    predictions = model.fit(rows, y).predict(rows)
    assert predictions.shape == (len(samples),) and np.isfinite(predictions).all()
