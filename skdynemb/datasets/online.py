"""Loaders for the full public datasets (need internet once; each also reads an already downloaded file).

- :func:`fetch_jarvis`: JARVIS-DFT through ``jarvis-tools`` (``jarvis.db.figshare.data``).
- :func:`jarvis_leaderboard_splits` / :func:`fetch_jarvis_leaderboard`: official JARVIS leaderboard
  splits, read from the ``jarvis-leaderboard`` package's data files (no download).
- :func:`fetch_mp_eform`: Materials Project 2018.6.1 (the MEGNet/ALIGNN set, 69,239 entries) via jarvis-tools.
- :func:`fetch_matbench`: Matbench v0.1 structure tasks through ``matminer.datasets.load_dataset``.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._core import (
    Dataset,
    DatasetUnavailableError,
    LazyStructures,
    PropertyTask,
    check_unique,
    id_frame,
    read_json,
    select_rows,
)
from .local import frame_from_json, matbench_frame_dataset

#: JARVIS's marker for a missing value.
JARVIS_MISSING = "na"
#: Renames for the MP 2018.6.1 ("megnet") keys; other keys get spaces/hyphens turned into "_".
MP_2018_RENAMES = {"gap pbe": "band_gap", "mu_b": "total_magnetization"}
LEADERBOARD_HINT = "pip install jarvis-leaderboard==2024.10.30 (only its data files are read; --no-deps suffices)"


def _figshare(dataset: str, store_dir) -> list[dict]:
    """Download (or reuse jarvis-tools' cached copy of) one JARVIS figshare dataset."""
    from jarvis.db import figshare

    if dataset not in figshare.get_db_info():
        raise ValueError(f"unknown JARVIS dataset {dataset!r}; see jarvis.db.figshare.get_db_info()")
    try:
        return figshare.data(dataset, store_dir=store_dir)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:  # requests errors are OSErrors
        raise DatasetUnavailableError(
            f"could not get JARVIS {dataset!r} through jarvis-tools ({type(exc).__name__}: {exc}); "
            "without internet, download the file elsewhere and pass path= to the .json/.json.zip"
        ) from exc


def _column_name(key: str, renames: dict) -> str:
    return renames.get(key, key.replace(" ", "_").replace("-", "_"))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def jarvis_records_dataset(records, name: str, id_key: str = "jid", renames: dict | None = None, *,
                           ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """Dataset from JARVIS-style records (``{id_key, "atoms": jarvis Atoms dict, property: value}``).

    Scalar numeric properties (and all-``"na"`` ones) become float targets with ``"na"`` as NaN; scalar
    text properties go to ``info``; list/dict properties (tensors, k-points, ...) are not kept.

    Parameters
    ----------
    records : list of dict
        The records.
    name : str
        The dataset's name (also used in messages).
    id_key : str, default="jid"
        The key holding each record's id.
    renames : dict, optional
        Record key -> column name (other keys get spaces and hyphens turned into ``_``).
    ids : sequence of str, optional
        Read only these entries, in this order.
    limit : int, optional
        Read only the first ``limit`` entries.
    sample : int, optional
        Read a random sample of that many entries (in file order); at most one of ``ids``,
        ``limit``, ``sample``.
    random_state : int, default=0
        Seed of ``sample``.

    Returns
    -------
    dataset : Dataset
        Ids, lazily parsed structures, targets and info (see :class:`~skdynemb.datasets.Dataset`).
    """
    renames = renames or {}
    if not isinstance(records, list):
        raise ValueError(f"{name}: expected a list of records, got {type(records).__name__}")
    for i, rec in enumerate(records):
        if id_key not in rec or "atoms" not in rec:
            raise ValueError(f"{name}: record {i} (id={rec.get(id_key)!r}) lacks {id_key!r} or 'atoms'")
    check_unique([r[id_key] for r in records], name)
    rows = select_rows([r[id_key] for r in records], ids, limit, sample, random_state)
    records = [records[i] for i in rows]
    entry_ids = np.array([r[id_key] for r in records], dtype=object)
    keys = sorted({k for r in records for k in r} - {id_key, "atoms"})
    targets, info = {}, {}
    for key in keys:
        values = [r.get(key, JARVIS_MISSING) for r in records]
        present = [v for v in values if v is not None and v != JARVIS_MISSING]
        column = _column_name(key, renames)
        if column in targets or column in info:
            raise ValueError(f"{name}: two keys map to the column {column!r}")
        if all(_is_number(v) for v in present):  # an all-"na" column stays a (NaN) target
            targets[column] = np.array(
                [float(v) if _is_number(v) else np.nan for v in values], dtype=np.float64
            )
        elif all(isinstance(v, (str, int, float)) for v in present):
            info[column] = [None if v == JARVIS_MISSING else v for v in values]
    structures = LazyStructures.from_raw([r["atoms"] for r in records], "jarvis", entry_ids)
    return Dataset(name, entry_ids, structures, id_frame(targets, entry_ids), None,
                   id_frame(info, entry_ids) if info else None)


def fetch_jarvis(dataset: str = "dft_3d_2021", *, path=None, store_dir=None, ids=None, limit=None,
                 sample=None, random_state=0) -> Dataset:
    """JARVIS-DFT with every scalar property as a target (JARVIS units: eV/atom, eV, GPa, ...).

    Parameters
    ----------
    dataset : str, default="dft_3d_2021"
        The JARVIS release: the 2021 3D one (55,713 entries, from which the leaderboard splits
        were drawn), or ``"dft_3d"``, the newer, larger one.
    path : str or Path, optional
        A downloaded .json/.json.zip to read instead of asking jarvis-tools.
    store_dir : str or Path, optional
        Where jarvis-tools keeps its download.
    ids : sequence of str, optional
        Read only these entries, in this order.
    limit : int, optional
        Read only the first ``limit`` entries.
    sample : int, optional
        Read a random sample of that many entries (in file order); at most one of ``ids``,
        ``limit``, ``sample``.
    random_state : int, default=0
        Seed of ``sample``.

    Returns
    -------
    dataset : Dataset
        Ids, lazily parsed structures, targets and info (see :class:`~skdynemb.datasets.Dataset`).
    """
    records = read_json(path) if path is not None else _figshare(dataset, store_dir)
    return jarvis_records_dataset(records, dataset, "jid", ids=ids, limit=limit, sample=sample,
                                  random_state=random_state)


def fetch_mp_eform(*, path=None, store_dir=None, ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """Materials Project 2018.6.1 (jarvis-tools dataset ``"megnet"``, the set the paper's extractor was trained on).

    Targets ``e_form`` (eV/atom), ``band_gap`` (PBE, eV), ``total_magnetization`` (μB),
    ``e_hull`` (eV/atom), ``bulk_modulus`` / ``shear_modulus`` (GPa, mostly NaN), .... For
    Matbench's larger MP set use ``fetch_matbench("matbench_mp_e_form")``.

    Parameters
    ----------
    path : str or Path, optional
        A downloaded .json/.json.zip to read instead of asking jarvis-tools.
    store_dir : str or Path, optional
        Where jarvis-tools keeps its download.
    ids : sequence of str, optional
        Read only these entries, in this order.
    limit : int, optional
        Read only the first ``limit`` entries.
    sample : int, optional
        Read a random sample of that many entries (in file order); at most one of ``ids``,
        ``limit``, ``sample``.
    random_state : int, default=0
        Seed of ``sample``.

    Returns
    -------
    dataset : Dataset
        Ids, lazily parsed structures, targets and info (see :class:`~skdynemb.datasets.Dataset`).
    """
    records = read_json(path) if path is not None else _figshare("megnet", store_dir)
    return jarvis_records_dataset(records, "mp_2018.6.1", "id", MP_2018_RENAMES, ids=ids, limit=limit,
                                  sample=sample, random_state=random_state)


def _leaderboard_dir() -> Path:
    spec = importlib.util.find_spec("jarvis_leaderboard")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the official JARVIS splits come from the jarvis-leaderboard package: {LEADERBOARD_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "benchmarks" / "AI" / "SinglePropertyPrediction"


def jarvis_leaderboard_splits(prop: str, dataset: str = "dft_3d") -> pd.DataFrame:
    """Official JARVIS leaderboard split of one property.

    The official files list a few ids in two parts (e.g. formation_energy_peratom: JVASP-113961 and
    JVASP-116461 in both train and test, same value); they are kept as given, so the index may repeat.

    Parameters
    ----------
    prop : str
        A JARVIS property, e.g. ``"formation_energy_peratom"``.
    dataset : str, default="dft_3d"
        The leaderboard's dataset name.

    Returns
    -------
    split : pandas.DataFrame
        Indexed by id, with the value column ``prop`` and ``split`` (``"train"``/``"val"``/``"test"``),
        rows as in the file (train, val, test).
    """
    folder = _leaderboard_dir()
    file = folder / f"{dataset}_{prop}.json.zip"
    if not file.is_file():
        known = sorted(p.name[len(dataset) + 1: -len(".json.zip")] for p in folder.glob(f"{dataset}_*.json.zip"))
        raise KeyError(f"no leaderboard benchmark {dataset}_{prop}; available properties: {known}")
    parts = read_json(file)
    if set(parts) != {"train", "val", "test"}:
        raise ValueError(f"{file}: expected train/val/test, got {sorted(parts)}")
    ids = [sid for part in ("train", "val", "test") for sid in parts[part]]
    return id_frame({
        prop: np.array([parts[p][sid] for p in ("train", "val", "test") for sid in parts[p]], dtype=np.float64),
        "split": np.array([p for p in ("train", "val", "test") for _ in parts[p]], dtype=object),
    }, np.array(ids, dtype=object))


def fetch_jarvis_leaderboard(prop: str, *, dataset: str = "dft_3d_2021", path=None, store_dir=None) -> PropertyTask:
    """One JARVIS leaderboard task: official ids, values and train/val/test labels, with structures.

    The labels come from :func:`jarvis_leaderboard_splits`, the structures from
    :func:`fetch_jarvis`; a leaderboard id without a structure in ``dataset`` raises ValueError.

    Parameters
    ----------
    prop : str
        A JARVIS property, e.g. ``"formation_energy_peratom"``.
    dataset : str, default="dft_3d_2021"
        The JARVIS release the structures come from.
    path : str or Path, optional
        A downloaded copy of that release (see :func:`fetch_jarvis`).
    store_dir : str or Path, optional
        Where jarvis-tools keeps its download.

    Returns
    -------
    task : PropertyTask
        Ids, structures, values and split labels, in the leaderboard's order.
    """
    table = jarvis_leaderboard_splits(prop)
    source = fetch_jarvis(dataset, path=path, store_dir=store_dir)
    position = {sid: i for i, sid in enumerate(source.ids)}
    lacking = [sid for sid in table.index if sid not in position]
    if lacking:
        raise ValueError(f"{len(lacking)} {prop} leaderboard ids have no structure in {dataset}: {lacking[:10]}")
    rows = np.array([position[sid] for sid in table.index], dtype=np.int64)
    return PropertyTask(prop, source.ids[rows], source.structures[rows], table[prop].to_numpy(),
                        table["split"].to_numpy(), rows)


def fetch_matbench(task: str = "matbench_dielectric", *, path=None, data_home=None, ids=None, limit=None,
                   sample=None, random_state=0) -> Dataset:
    """A Matbench v0.1 structure task via ``matminer.datasets.load_dataset``.

    Ids are ``mb-<task>-<row>``; the official folds come from :func:`matbench_folds`.

    Parameters
    ----------
    task : str, default="matbench_dielectric"
        A Matbench structure task.
    path : str or Path, optional
        A downloaded pandas-JSON file to read instead of asking matminer.
    data_home : str or Path, optional
        matminer's download folder.
    ids : sequence of str, optional
        Read only these entries, in this order.
    limit : int, optional
        Read only the first ``limit`` entries.
    sample : int, optional
        Read a random sample of that many entries (in file order); at most one of ``ids``,
        ``limit``, ``sample``.
    random_state : int, default=0
        Seed of ``sample``.

    Returns
    -------
    dataset : Dataset
        Ids, lazily parsed structures, targets and info (see :class:`~skdynemb.datasets.Dataset`).
    """
    if path is not None:
        frame = frame_from_json(read_json(path))
    else:
        import matminer.datasets as mmd

        try:
            frame = mmd.load_dataset(task, data_home=data_home)
        except (OSError, UserWarning) as exc:  # download, missing file, hash mismatch
            raise DatasetUnavailableError(
                f"could not get {task!r} through matminer ({type(exc).__name__}: {exc}); without internet, "
                "pass path= to the downloaded .json.gz"
            ) from exc
        if not isinstance(frame, pd.DataFrame):
            raise DatasetUnavailableError(f"matminer returned {type(frame).__name__} for {task!r}; pass path=")
    return matbench_frame_dataset(frame, task, ids=ids, limit=limit, sample=sample, random_state=random_state)
