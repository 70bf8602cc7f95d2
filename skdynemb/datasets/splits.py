"""The paper's data conventions as functions: seeded 80:10:10 splits, the polymorph filter, Matbench folds."""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from .._paths import shared_data
from ._core import DatasetUnavailableError, read_json
from .local import matbench_ids

MATBENCH_VALIDATION_FILE = ("matbench", "matbench_v0.1_validation.json.gz")


def train_val_test_split(n_or_ids, fractions=(0.8, 0.1, 0.1), random_state=0):
    """Seeded random split into (train, val, test) index arrays, each sorted.

    The validation and test sizes are ``floor(fraction * n)``; training gets the rest, so every
    index lands in exactly one part. Same ``random_state`` -> same split.

    Parameters
    ----------
    n_or_ids : int or sequence
        A count, or a sequence (only its length is used).
    fractions : tuple of 3 float, default=(0.8, 0.1, 0.1)
        Train, validation and test shares; non-negative, summing to 1.
    random_state : int or RandomState, default=0
        Seed of the permutation.

    Returns
    -------
    train, val, test : ndarray of int
        Sorted indices of each part.
    """
    n = int(n_or_ids) if isinstance(n_or_ids, (int, np.integer)) else len(n_or_ids)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    n_val = math.floor(fractions[1] * n + 1e-9)
    n_test = math.floor(fractions[2] * n + 1e-9)
    order = check_random_state(random_state).permutation(n)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return np.sort(train), np.sort(val), np.sort(test)


def reduced_formula(composition, index: int | None = None) -> str:
    """Reduced formula of a formula, composition, structure or crystal.

    Parameters
    ----------
    composition : str, Composition, Structure or Crystal
        A formula string, pymatgen Composition, Structure (or anything with ``.composition``) or
        :class:`~skdynemb.structures.Crystal`.
    index : int, optional
        Its sample index, for the message of an unreadable composition (ValueError).

    Returns
    -------
    formula : str
        pymatgen's reduced formula, e.g. ``"LiCoO2"``.
    """
    from pymatgen.core import Composition

    try:
        if isinstance(composition, str):
            composition = Composition(composition)
        elif hasattr(composition, "composition"):
            composition = composition.composition
        elif hasattr(composition, "numbers") and hasattr(composition, "symbols"):
            composition = Composition(" ".join(composition.symbols))
        if not isinstance(composition, Composition):
            raise TypeError(f"cannot read a {type(composition).__name__} as a composition")
        if composition.num_atoms <= 0:
            raise ValueError("empty composition")
        with warnings.catch_warnings():  # noble gases lack a Pauling electronegativity: harmless here
            warnings.filterwarnings("ignore", message="No Pauling electronegativity")
            return composition.reduced_formula
    except Exception as exc:
        where = "composition" if index is None else f"sample {index}"
        raise ValueError(f"{where}: {exc}") from exc


def drop_polymorphs(compositions: Sequence, energy) -> np.ndarray:
    """The paper's "without polymorphs" filter: per reduced composition keep the entry with the lowest
    ``energy`` (formation energy, eV/atom; or the target itself where no formation energy exists).

    Ties keep the first occurrence ("with polymorphs" = keep all).

    Parameters
    ----------
    compositions : sequence
        Formula strings, Compositions, Structures or Crystals (e.g.
        ``dataset.structures.compositions()``).
    energy : array-like of shape (n_samples,)
        The energy to minimise per composition (eV/atom), finite.

    Returns
    -------
    kept : ndarray of int
        The kept indices, ascending.
    """
    energy = np.asarray(energy, dtype=np.float64)
    if energy.shape != (len(compositions),):
        raise ValueError(f"energy has shape {energy.shape} for {len(compositions)} compositions")
    bad = np.flatnonzero(~np.isfinite(energy))
    if bad.size:
        raise ValueError(f"energy is NaN/inf at samples {bad[:10].tolist()}; drop them first")
    keys = [reduced_formula(c, i) for i, c in enumerate(compositions)]
    order = np.lexsort((np.arange(len(keys)), energy))
    seen: set[str] = set()
    kept = []
    for i in order:
        if keys[i] not in seen:
            seen.add(keys[i])
            kept.append(i)
    return np.sort(np.array(kept, dtype=np.int64))


def _validation_file(path) -> Path:
    if path is not None:
        if not Path(path).is_file():
            raise DatasetUnavailableError(f"no such data file: {path}")
        return Path(path)
    found = shared_data(*MATBENCH_VALIDATION_FILE)
    if found is not None:
        return found
    spec = importlib.util.find_spec("matbench")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "matbench_v0.1_validation.json"
        if candidate.is_file():
            return candidate
    raise DatasetUnavailableError(
        "matbench_v0.1_validation.json(.gz) not found: put it under $SKDYNEMB_DATA/matbench/, "
        "pass path=..., or `pip install matbench==0.6` (it ships the file)"
    )


@functools.lru_cache(maxsize=2)
def _read_validation(file: str, mtime_ns: int) -> dict:
    """The file's ``splits`` (cached: the official file holds 13 tasks, ~5 MB compressed)."""
    return read_json(file)["splits"]


def matbench_folds(task: str = "matbench_dielectric", ids: Sequence | None = None, path=None):
    """Official Matbench v0.1 5-fold splits as ``[(train_idx, test_idx), ...]`` (usable as ``cv=``).

    Parameters
    ----------
    task : str, default="matbench_dielectric"
        A Matbench v0.1 task.
    ids : sequence of str, optional
        The ids the indices point into (e.g. ``dataset.ids``); by default the task's full
        official row order. With ``ids`` a subset of the task, fold entries outside it are left
        out of every fold.
    path : str or Path, optional
        ``matbench_v0.1_validation.json(.gz)`` (default: the data folder's, or the matbench
        package's).

    Returns
    -------
    folds : list of (ndarray, ndarray)
        Five ``(train_idx, test_idx)`` pairs of sorted indices.
    """
    file = _validation_file(path)
    splits = _read_validation(str(file), file.stat().st_mtime_ns)
    if task not in splits:
        raise KeyError(f"no Matbench task {task!r}; available: {sorted(splits)}")
    folds = [splits[task][name] for name in sorted(splits[task], key=lambda s: int(s.rsplit("_", 1)[1]))]
    official = {sid for fold in folds for sid in fold["test"]}
    if ids is None:
        ids = matbench_ids(task, len(official))
        if set(ids) != official:
            raise ValueError(f"{task}: fold ids do not follow the mb-<task>-<row> pattern")
    position = {sid: i for i, sid in enumerate(ids)}
    unknown = [sid for sid in ids if sid not in official]
    if unknown:
        raise KeyError(f"{len(unknown)} ids are not in {task}'s folds: {list(unknown[:10])}")
    return [
        tuple(np.sort(np.array([position[s] for s in fold[part] if s in position], dtype=np.int64))
              for part in ("train", "test"))
        for fold in folds
    ]
