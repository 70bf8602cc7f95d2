"""Readers for the project's local data files (``shared/data``; see its README).

Each reader returns a :class:`~skdynemb.datasets.Dataset` and accepts ``path=`` (default: the file under
``shared/data``) and one of ``ids=`` / ``limit=`` / ``sample=`` (+ ``random_state``) to read only some
entries. Structures are parsed lazily, on first access.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._paths import DATA_ENV, shared_data, where_data_is_looked_for
from ._core import (
    Dataset,
    DatasetUnavailableError,
    LazyStructures,
    PropertyTask,
    check_unique,
    float_column,
    id_frame,
    read_json,
    select_rows,
)

MP_EFORM_FILE = ("mp", "mp_eform_crysxpp.json.gz")
MP_ELASTICITY_FILE = ("mp", "mp_elasticity_3191.json.gz")
JARVIS_LEADERBOARD_FILE = ("jarvis", "jarvis_structures_with_leaderboard_props.json.gz")
MATBENCH_DIELECTRIC_FILE = ("matbench", "matbench_dielectric.json.gz")

#: Raw key -> target name for the MP formation-energy file (units: eV/atom, eV, eV, Å³, μB per cell).
MP_EFORM_TARGETS = {
    "e_form": "e_form", "band_gap": "band_gap", "efermi": "efermi", "volume": "volume",
    "col5": "total_magnetization",
}
#: MP elasticity targets (GPa, GPa, dimensionless).
MP_ELASTICITY_TARGETS = {"K_VRH": "K_VRH", "G_VRH": "G_VRH", "poisson": "poisson"}


def locate(path, parts: tuple[str, ...], online_hint: str) -> Path:
    """``path`` if given, else ``<data folder>/<parts>`` (``$SKDYNEMB_DATA``, or ``shared/data``).

    Parameters
    ----------
    path : str, Path or None
        A file the caller named.
    parts : tuple of str
        The file's place in the data folder, e.g. :data:`MP_EFORM_FILE`.
    online_hint : str
        The online loader to suggest when the file is missing.

    Returns
    -------
    path : Path
        The file.

    Raises
    ------
    DatasetUnavailableError
        Neither exists; the message says where it looked and how to get the data.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DatasetUnavailableError(f"no such data file: {path}")
        return path
    found = shared_data(*parts)
    if found is None:
        raise DatasetUnavailableError(
            f"{'/'.join(parts)} not found in the data folder ({where_data_is_looked_for()}): set "
            f"$SKDYNEMB_DATA to a folder holding {parts[0]}/{parts[-1]}, pass path=..., or, with internet, "
            f"use {online_hint}"
        )
    return found


def data_file(parts: tuple[str, ...], data_dir=None) -> Path | None:
    """The local copy of one data file, or None when no data folder is configured.

    ``parts`` is the file's place in the data folder, e.g. :data:`JARVIS_LEADERBOARD_FILE`. The
    folder is ``data_dir`` if given, else ``$SKDYNEMB_DATA``, else ``../shared/data`` beside a
    clone of the repository. A folder that was named (``data_dir`` or ``$SKDYNEMB_DATA``) must hold
    the file (:class:`DatasetUnavailableError` otherwise); without one, None says "use an online
    loader".

    Parameters
    ----------
    parts : tuple of str
        The file's place in the data folder.
    data_dir : str or Path, optional
        The data folder.

    Returns
    -------
    path : Path or None
        The file, or None when no data folder is configured.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser().joinpath(*parts)
        if not path.is_file():
            raise DatasetUnavailableError(f"no {'/'.join(parts)} in the data folder {data_dir}")
        return path
    found = shared_data(*parts)
    if found is None and os.environ.get(DATA_ENV):
        raise DatasetUnavailableError(
            f"{'/'.join(parts)} not found in the data folder ({where_data_is_looked_for()})"
        )
    return found


def _records(path: Path, id_key: str, required: tuple[str, ...]) -> list[dict]:
    records = read_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    for i, rec in enumerate(records):
        lacking = [k for k in (id_key, *required) if k not in rec]
        if lacking:
            raise ValueError(f"{path}: record {i} (id={rec.get(id_key)!r}) lacks {lacking}")
    check_unique([rec[id_key] for rec in records], str(path))
    return records


def _mp_cif_dataset(name, path, parts, targets, hint, ids, limit, sample, random_state) -> Dataset:
    path = locate(path, parts, hint)
    records = _records(path, "material_id", ("cif", *targets))
    rows = select_rows([r["material_id"] for r in records], ids, limit, sample, random_state)
    records = [records[i] for i in rows]
    mp_ids = np.array([r["material_id"] for r in records], dtype=object)
    columns = {
        new: float_column([r[old] for r in records], old, mp_ids, str(path)) for old, new in targets.items()
    }
    structures = LazyStructures.from_raw([r["cif"] for r in records], "cif", mp_ids)
    return Dataset(name, mp_ids, structures, id_frame(columns, mp_ids))


def load_mp_eform(path=None, *, ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """Materials Project formation-energy set (36,737 entries, CGCNN redistribution of MP).

    Targets: ``e_form`` (eV/atom), ``band_gap`` (eV), ``efermi`` (eV; two entries are NaN and stay
    NaN: ``task("efermi")`` raises unless ``missing="drop"``), ``volume`` (Å³) and
    ``total_magnetization`` (μB per cell; raw key ``col5``). Structures come from the CIF text.

    Parameters
    ----------
    path : str or Path, optional
        The data file (default: ``mp/mp_eform_crysxpp.json.gz`` in the data folder:
        ``$SKDYNEMB_DATA``, or ``shared/data``).
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
        Ids, lazily parsed structures and targets (see :class:`~skdynemb.datasets.Dataset`).
    """
    return _mp_cif_dataset(
        "mp_eform", path, MP_EFORM_FILE, MP_EFORM_TARGETS, "skdynemb.datasets.fetch_mp_eform()",
        ids, limit, sample, random_state,
    )


def load_mp_elasticity(path=None, *, ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """Materials Project elasticity set (3,191 entries): ``K_VRH``, ``G_VRH`` (GPa), ``poisson``.

    Parameters
    ----------
    path : str or Path, optional
        The data file (default: ``mp/mp_elasticity_3191.json.gz`` in the data folder:
        ``$SKDYNEMB_DATA``, or ``shared/data``).
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
        Ids, lazily parsed structures and targets (see :class:`~skdynemb.datasets.Dataset`).
    """
    return _mp_cif_dataset(
        "mp_elasticity", path, MP_ELASTICITY_FILE, MP_ELASTICITY_TARGETS,
        "skdynemb.datasets.fetch_matbench('matbench_log_kvrh') (log10 moduli)", ids, limit, sample, random_state,
    )


def load_jarvis_leaderboard(path=None, *, ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """JARVIS-DFT 3D subset (1,124 entries) with up to 28 properties and their leaderboard labels.

    The official train/val/test labels are in ``Dataset.splits``. Units follow JARVIS (e.g.
    formation_energy_peratom in eV/atom, bulk_modulus_kv / shear_modulus_gv in GPa, band gaps in
    eV, Tc_supercon in K). ``info`` holds each entry's ``source``.

    Parameters
    ----------
    path : str or Path, optional
        The data file (default: ``jarvis/jarvis_structures_with_leaderboard_props.json.gz`` in the data folder:
        ``$SKDYNEMB_DATA``, or ``shared/data``).
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
        Ids, lazily parsed structures and targets (see :class:`~skdynemb.datasets.Dataset`).
    """
    path = locate(path, JARVIS_LEADERBOARD_FILE, "skdynemb.datasets.fetch_jarvis_leaderboard(prop)")
    records = _records(path, "jid", ("structure",))
    rows = select_rows([r["jid"] for r in records], ids, limit, sample, random_state)
    records = [records[i] for i in rows]
    jids = np.array([r["jid"] for r in records], dtype=object)
    everything = {k for r in records for k in r}
    props = sorted(k[: -len("__split")] for k in everything if k.endswith("__split"))
    unlabeled = sorted(everything - {"jid", "source", "structure"} - set(props) - {p + "__split" for p in props})
    if unlabeled:
        raise ValueError(f"{path}: properties without split labels: {unlabeled}")
    targets = {p: float_column([r.get(p) for r in records], p, jids, str(path)) for p in props}
    splits = {p: [r.get(p + "__split") for r in records] for p in props}
    for p in props:
        for i, (value, label) in enumerate(zip(targets[p], splits[p])):
            if np.isnan(value) != (label is None) or label not in (None, "train", "val", "test"):
                raise ValueError(f"{path}: entry {i} (id={jids[i]!r}) has {p}={value} with split label {label!r}")
    structures = LazyStructures.from_raw([r["structure"] for r in records], "pymatgen", jids)
    info = id_frame({"source": [r.get("source") for r in records]}, jids)
    return Dataset("jarvis_leaderboard", jids, structures, id_frame(targets, jids), id_frame(splits, jids), info)


def jarvis_leaderboard_task(prop: str, path=None) -> PropertyTask:
    """Structures, values and official split labels of one JARVIS property, entries without it left out.

    Parameters
    ----------
    prop : str
        A JARVIS property, e.g. ``"formation_energy_peratom"``.
    path : str or Path, optional
        The data file (see :func:`load_jarvis_leaderboard`).

    Returns
    -------
    task : PropertyTask
        The entries that have the property, with their values and split labels.
    """
    return load_jarvis_leaderboard(path).task(prop, missing="drop")


def matbench_ids(task: str, n: int) -> np.ndarray:
    """Matbench v0.1 ids of rows ``0..n-1``: ``mb-<task without 'matbench_', '_'->'-'>-<row+1>``.

    Parameters
    ----------
    task : str
        The Matbench task, e.g. ``"matbench_dielectric"``.
    n : int
        Its number of rows.

    Returns
    -------
    ids : ndarray of str (object)
        The number zero-padded to the width of ``n`` (e.g. ``mb-dielectric-0001``).
    """
    stem = task.removeprefix("matbench_").replace("_", "-")
    width = len(str(n))
    return np.array([f"mb-{stem}-{i + 1:0{width}d}" for i in range(n)], dtype=object)


def matbench_frame_dataset(frame: pd.DataFrame, task: str, targets: list[str] | None = None, *, ids=None,
                           limit=None, sample=None, random_state=0) -> Dataset:
    """Dataset from a matbench/matminer DataFrame in official row order.

    Parameters
    ----------
    frame : pandas.DataFrame
        A ``structure`` column (pymatgen Structures or dicts), the target columns and others.
    task : str
        The Matbench task's name (the dataset's name and the ids' stem).
    targets : list of str, optional
        The target columns (default: every numeric non-bool column); the remaining columns go
        to ``info``.
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
        Ids from :func:`matbench_ids`, lazily parsed structures, targets and info.
    """
    if "structure" not in frame.columns:
        raise ValueError(
            f"{task} has no 'structure' column (columns {list(frame.columns)}): composition-only tasks "
            "are not structure datasets"
        )
    if targets is None:
        targets = [c for c in frame.columns if c != "structure" and pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
    other = [c for c in frame.columns if c != "structure" and c not in targets]
    all_ids = matbench_ids(task, len(frame))
    rows = select_rows(all_ids, ids, limit, sample, random_state)
    frame = frame.iloc[rows]
    mb_ids = all_ids[rows]
    values = {c: float_column(frame[c].tolist(), c, mb_ids, task) for c in targets}
    info = id_frame({c: frame[c].to_numpy() for c in other}, mb_ids) if other else None
    structures = LazyStructures.from_raw(list(frame["structure"]), "pymatgen", mb_ids)
    return Dataset(task, mb_ids, structures, id_frame(values, mb_ids), None, info)


def frame_from_json(obj) -> pd.DataFrame:
    """A DataFrame from pandas JSON in "columns" or matminer's "split" orientation.

    Parameters
    ----------
    obj : dict
        ``{col: {row: value}}`` ("columns") or ``{data, columns, index}`` ("split"), rows
        labelled 0..n-1.

    Returns
    -------
    frame : pandas.DataFrame
        Rows in integer order.
    """
    if isinstance(obj, dict) and set(obj) == {"data", "columns", "index"}:
        frame = pd.DataFrame(obj["data"], columns=obj["columns"], index=obj["index"])
    elif isinstance(obj, dict) and all(isinstance(v, dict) for v in obj.values()):
        frame = pd.DataFrame({col: pd.Series(vals) for col, vals in obj.items()})
    else:
        raise ValueError("expected pandas JSON in 'columns' or 'split' orientation")
    order = np.array([int(i) for i in frame.index])
    if sorted(order.tolist()) != list(range(len(frame))):
        raise ValueError(f"row labels are not 0..{len(frame) - 1}")
    return frame.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def load_matbench_dielectric(path=None, *, ids=None, limit=None, sample=None, random_state=0) -> Dataset:
    """Matbench v0.1 dielectric task (4,764 entries): target ``n`` (refractive index, dimensionless).

    ``info``: spg_symbol, spg_num, crystal_sys, volume (Å³), formula. Row i has id
    ``mb-dielectric-{i+1:04d}``; the official folds come from :func:`matbench_folds`.

    Parameters
    ----------
    path : str or Path, optional
        The data file (default: ``matbench/matbench_dielectric.json.gz`` in the data folder:
        ``$SKDYNEMB_DATA``, or ``shared/data``).
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
        Ids, lazily parsed structures and targets (see :class:`~skdynemb.datasets.Dataset`).
    """
    path = locate(path, MATBENCH_DIELECTRIC_FILE, "skdynemb.datasets.fetch_matbench('matbench_dielectric')")
    return matbench_frame_dataset(
        frame_from_json(read_json(path)), "matbench_dielectric", ["n"], ids=ids, limit=limit, sample=sample,
        random_state=random_state,
    )
