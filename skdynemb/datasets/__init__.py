"""Datasets: local readers for ``shared/data``, online loaders, and the paper's split conventions.

Local files (see ``shared/data/README.md``): :func:`load_mp_eform`, :func:`load_mp_elasticity`,
:func:`load_jarvis_leaderboard` (+ :func:`jarvis_leaderboard_task`), :func:`load_matbench_dielectric`.
Either, whichever is reachable: :func:`jarvis_split_task` (a JARVIS property and its split).
Online: :func:`fetch_jarvis`, :func:`fetch_jarvis_leaderboard`, :func:`jarvis_leaderboard_splits`,
:func:`fetch_mp_eform`, :func:`fetch_matbench`. Conventions: :func:`train_val_test_split`,
:func:`drop_polymorphs`, :func:`matbench_folds`.

Every loader returns a :class:`Dataset` (ids, lazily parsed pymatgen structures, a targets DataFrame,
official split labels where the source has them); ``Dataset.task(name)`` gives one property's
structures, values and split as a :class:`PropertyTask`.
"""

from ._core import Dataset, DatasetUnavailableError, LazyStructures, PropertyTask
from .local import (
    jarvis_leaderboard_task,
    load_jarvis_leaderboard,
    load_matbench_dielectric,
    load_mp_elasticity,
    load_mp_eform,
    matbench_ids,
)
from .online import (
    fetch_jarvis,
    fetch_jarvis_leaderboard,
    fetch_matbench,
    fetch_mp_eform,
    jarvis_leaderboard_splits,
)
from .splits import drop_polymorphs, matbench_folds, reduced_formula, train_val_test_split
from .tasks import jarvis_split_task

__all__ = [
    "Dataset",
    "DatasetUnavailableError",
    "LazyStructures",
    "PropertyTask",
    "drop_polymorphs",
    "fetch_jarvis",
    "fetch_jarvis_leaderboard",
    "fetch_matbench",
    "fetch_mp_eform",
    "jarvis_split_task",
    "jarvis_leaderboard_splits",
    "jarvis_leaderboard_task",
    "load_jarvis_leaderboard",
    "load_matbench_dielectric",
    "load_mp_elasticity",
    "load_mp_eform",
    "matbench_folds",
    "matbench_ids",
    "reduced_formula",
    "train_val_test_split",
]
