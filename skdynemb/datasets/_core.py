"""Containers shared by the dataset loaders: lazily parsed structures, a dataset, one property's task."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..structures import InvalidStructureError

#: How raw structure payloads are stored: CIF text, pymatgen dict (or Structure), jarvis-tools Atoms dict.
KINDS = ("cif", "pymatgen", "jarvis")

_FORMULA_SUM = re.compile(r"^_chemical_formula_sum\s+'?([^'\n]+?)'?\s*$", re.MULTILINE)


class DatasetUnavailableError(OSError):
    """A data file is missing locally and could not be downloaded; the message says where to put it."""


def read_json(path) -> object:
    """Read ``.json``, ``.json.gz`` or a single-member ``.json.zip`` file.

    A file that cannot be read to its end (a compressed file cut short or corrupt, invalid JSON,
    not UTF-8) raises a ValueError naming it; a missing file a FileNotFoundError naming it.
    """
    path = Path(path)
    try:
        return _read_json(path)
    except (EOFError, UnicodeDecodeError, json.JSONDecodeError, zlib.error, zipfile.BadZipFile,
            gzip.BadGzipFile) as exc:
        raise ValueError(
            f"{path}: cannot be read as JSON (cut short, corrupt or not this format: {type(exc).__name__}: {exc})"
        ) from exc


def _read_json(path: Path) -> object:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".json")]
            if len(members) != 1:
                raise ValueError(f"{path}: expected one .json file inside the zip, found {members}")
            return json.loads(archive.read(members[0]))
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _parse(raw, kind: str, row: int, sample_id):
    """Parse one raw payload into a pymatgen Structure; errors name the row and id."""
    from pymatgen.core import Lattice, Structure

    try:
        if kind == "cif":
            from pymatgen.io.cif import CifParser

            return CifParser.from_str(raw).parse_structures(primitive=False, on_error="raise")[0]
        if kind == "pymatgen":
            return raw if isinstance(raw, Structure) else Structure.from_dict(raw)
        return Structure(
            Lattice(raw["lattice_mat"]), raw["elements"], raw["coords"],
            coords_are_cartesian=bool(raw["cartesian"]),
        )
    except Exception as exc:  # pymatgen raises many types for malformed input
        raise InvalidStructureError(row, sample_id, f"could not parse the {kind} structure: {exc}") from exc


def _composition(raw, kind: str, row: int, sample_id):
    """Composition of one raw payload without building the full structure where possible."""
    from pymatgen.core import Composition, Structure

    if kind == "cif":
        match = _FORMULA_SUM.search(raw)
        if match is None:
            return _parse(raw, kind, row, sample_id).composition
        return Composition(match.group(1))
    if kind == "pymatgen":
        if isinstance(raw, Structure):
            return raw.composition
        amounts: Counter = Counter()
        for site in raw["sites"]:
            for species in site["species"]:
                amounts[species["element"]] += species.get("occu", 1)
        return Composition(amounts)
    return Composition(Counter(raw["elements"]))


class _Store:
    """Raw payloads of one kind plus a parse cache shared by every view."""

    def __init__(self, raw: list, kind: str, ids: np.ndarray):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.raw, self.kind, self.ids = raw, kind, ids
        self.cache: list = [None] * len(raw)

    def get(self, row: int):
        if self.cache[row] is None:
            self.cache[row] = _parse(self.raw[row], self.kind, row, self.ids[row])
        return self.cache[row]


class LazyStructures(Sequence):
    """Read-only sequence of pymatgen ``Structure`` objects, each parsed on first access and cached.

    Integer indexing returns a ``Structure``; slices, integer arrays and boolean masks return a
    ``LazyStructures`` view sharing the same cache. Parse errors raise
    :class:`~skdynemb.structures.InvalidStructureError` naming the row and id. Build one with
    :meth:`from_raw`.

    Parameters
    ----------
    store : _Store
        The raw payloads, their ids and the shared cache (internal).
    rows : ndarray of int, optional
        The payloads this view holds, in order (default: all).
    """

    def __init__(self, store: _Store, rows: np.ndarray | None = None):
        self._store = store
        self._rows = np.arange(len(store.raw)) if rows is None else np.asarray(rows, dtype=np.int64)

    @classmethod
    def from_raw(cls, raw: Sequence, kind: str, ids: Sequence) -> LazyStructures:
        """Wrap raw payloads: CIF texts (``"cif"``), pymatgen dicts/Structures (``"pymatgen"``) or
        jarvis-tools Atoms dicts (``"jarvis"``)."""
        ids = np.asarray(ids, dtype=object)
        if len(ids) != len(raw):
            raise ValueError(f"{len(ids)} ids for {len(raw)} structures")
        return cls(_Store(list(raw), kind, ids))

    @property
    def ids(self) -> np.ndarray:
        return self._store.ids[self._rows]

    @property
    def kind(self) -> str:
        return self._store.kind

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._store.get(int(self._rows[key]))
        return LazyStructures(self._store, self._rows[_as_indexer(key, len(self))])

    def raw(self, i: int):
        """The unparsed payload of item ``i``.

        Parameters
        ----------
        i : int
            Position in this sequence.

        Returns
        -------
        payload : str or dict
            CIF text, or a structure dict.
        """
        return self._store.raw[int(self._rows[i])]

    def compositions(self) -> list:
        """pymatgen ``Composition`` per item, read from the raw payload where possible.

        The CIF formula or the site list is read without parsing the structure, which is much
        cheaper than parsing every structure.

        Returns
        -------
        compositions : list of pymatgen.core.Composition
            One per item, in order.
        """
        store = self._store
        return [
            store.cache[r].composition if store.cache[r] is not None
            else _composition(store.raw[r], store.kind, int(r), store.ids[r])
            for r in self._rows
        ]

    def __repr__(self) -> str:
        parsed = sum(self._store.cache[r] is not None for r in self._rows)
        return f"LazyStructures(n={len(self)}, kind={self.kind!r}, parsed={parsed})"


def _as_indexer(key, n: int):
    """A slice stays a slice; anything else becomes an int index array (bool masks checked)."""
    if isinstance(key, slice):
        return key
    key = np.asarray(key)
    if key.dtype == bool:
        if key.shape != (n,):
            raise IndexError(f"boolean mask of shape {key.shape} for {n} items")
        return np.flatnonzero(key)
    if key.ndim != 1 or (key.size and not np.issubdtype(key.dtype, np.integer)):
        raise IndexError(f"index with an int, a slice, a 1-D int array or a boolean mask, got {key!r}")
    return key.astype(np.int64)


@dataclass(frozen=True, eq=False)
class PropertyTask:
    """One target of a dataset, rows without a value removed.

    Attributes
    ----------
    name : str
        The target's column name.
    ids : ndarray of shape (n,)
        Entry ids.
    structures : LazyStructures
        Lazily parsed pymatgen Structures, aligned with ``ids``.
    y : ndarray of shape (n,), float64
        Target values (units as in the source; see the loader).
    split : ndarray of shape (n,) or None
        Object array of ``"train"`` / ``"val"`` / ``"test"``; None when the source has none.
    index : ndarray of shape (n,)
        Rows of the parent :class:`Dataset`.
    """

    name: str
    ids: np.ndarray
    structures: LazyStructures
    y: np.ndarray
    split: np.ndarray | None
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def to_frame(self, structures: bool = True) -> pd.DataFrame:
        """The task as a DataFrame indexed by id: ``structure`` (parsed now), the target, ``split``.

        Parameters
        ----------
        structures : bool, default=True
            Include the ``structure`` column of pymatgen Structures (parsing every entry).

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``structure`` (if asked), ``self.name`` (float64) and ``split`` (if the
            source has one), ready for matminer's ``featurize_dataframe(frame, "structure")``.
        """
        columns = {"structure": list(self.structures)} if structures else {}
        columns[self.name] = self.y
        if self.split is not None:
            columns["split"] = self.split
        return pd.DataFrame(columns, index=pd.Index(self.ids, name="id"))

    def split_indices(self) -> dict[str, np.ndarray]:
        """Positions (into this task) of the official ``train`` / ``val`` / ``test`` entries.

        Returns
        -------
        indices : dict of str to ndarray of int
            ``"train"``, ``"val"`` and ``"test"`` -> positions; ValueError when the task has no
            official split.
        """
        if self.split is None:
            raise ValueError(f"{self.name!r} has no official split; use skdynemb.datasets.train_val_test_split")
        return {part: np.flatnonzero(self.split == part) for part in ("train", "val", "test")}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Entries of one data file: ids, lazily parsed structures, numeric targets and split labels.

    Attributes
    ----------
    name : str
        Dataset name.
    ids : ndarray of shape (n,)
        Entry ids (str).
    structures : LazyStructures
        Lazily parsed structures aligned with ``ids``.
    targets : pandas.DataFrame
        Indexed by id, one float64 column per property; NaN marks a missing value.
    splits : pandas.DataFrame or None
        Indexed by id, one column per property with official ``"train"``/``"val"``/``"test"``
        labels (None where the property is missing); None when the source has none.
    info : pandas.DataFrame or None
        Indexed by id, non-target metadata (formula, space group, ...).
    """

    name: str
    ids: np.ndarray
    structures: LazyStructures
    targets: pd.DataFrame
    splits: pd.DataFrame | None = None
    info: pd.DataFrame | None = None

    def __post_init__(self):
        n = len(self.ids)
        for field, value in (("structures", self.structures), ("targets", self.targets),
                             ("splits", self.splits), ("info", self.info)):
            if value is not None and len(value) != n:
                raise ValueError(f"{field} has {len(value)} rows for {n} ids")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n={len(self)}, targets={list(self.targets.columns)})"

    def to_frame(self, structures: bool = True, splits: bool = True, info: bool = True) -> pd.DataFrame:
        """The dataset as one DataFrame indexed by id, as matminer works with it.

        Parameters
        ----------
        structures : bool, default=True
            Include a ``structure`` column of pymatgen Structures (parsing every entry now).
        splits : bool, default=True
            Include the official split labels as ``<target>_split`` columns (where the source has them).
        info : bool, default=True
            Include the metadata columns (formula, space group, ...).

        Returns
        -------
        frame : pandas.DataFrame
            ``structure``, then one float64 column per target (NaN where missing), then the split
            and info columns.

        Examples
        --------
        >>> from skdynemb.datasets import load_mp_elasticity
        >>> df = load_mp_elasticity(limit=5).to_frame()  # doctest: +SKIP
        >>> from matminer.featurizers.structure import DensityFeatures  # doctest: +SKIP
        >>> DensityFeatures().featurize_dataframe(df, "structure")  # doctest: +SKIP
        """
        index = pd.Index(self.ids, name="id")
        parts = [pd.DataFrame({"structure": list(self.structures)}, index=index)] if structures else []
        parts.append(self.targets.set_axis(index))
        if splits and self.splits is not None:
            parts.append(self.splits.add_suffix("_split").set_axis(index))
        if info and self.info is not None:
            parts.append(self.info.set_axis(index))
        names = [c for part in parts for c in part.columns]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise ValueError(f"{self.name}: columns {repeated} appear twice; pass info=False or splits=False")
        return pd.concat(parts, axis=1)

    def subset(self, indices) -> Dataset:
        """The rows ``indices`` as a new Dataset.

        Parameters
        ----------
        indices : array of int, slice or boolean mask
            The rows to keep.

        Returns
        -------
        dataset : Dataset
            Same name; the rows' ids, structures (sharing the parse cache), targets, splits and info.
        """
        rows = np.arange(len(self))[_as_indexer(indices, len(self))]
        return Dataset(
            self.name, self.ids[rows], self.structures[rows], self.targets.iloc[rows],
            None if self.splits is None else self.splits.iloc[rows],
            None if self.info is None else self.info.iloc[rows],
        )

    def task(self, target: str, missing: str = "raise") -> PropertyTask:
        """One target with its structures and split labels.

        Parameters
        ----------
        target : str
            A column of ``targets``.
        missing : {"raise", "drop"}, default="raise"
            ``"raise"`` raises if any entry lacks the value (NaN, inf), naming the ids; ``"drop"``
            leaves those entries out (``PropertyTask.index`` says which rows remain).

        Returns
        -------
        task : PropertyTask
            Ids, structures, values and split labels of the target.
        """
        if target not in self.targets.columns:
            raise KeyError(f"{self.name} has no target {target!r}; available: {list(self.targets.columns)}")
        if missing not in ("raise", "drop"):
            raise ValueError(f"missing must be 'raise' or 'drop', got {missing!r}")
        y = self.targets[target].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(y)
        if bad.any() and missing == "raise":
            raise ValueError(
                f"{self.name}: {int(bad.sum())} entries have no finite {target!r} (ids "
                f"{list(self.ids[bad][:10])}{' ...' if bad.sum() > 10 else ''}); pass missing='drop' to leave them out"
            )
        rows = np.flatnonzero(~bad)
        split = None
        if self.splits is not None and target in self.splits.columns:
            split = self.splits[target].to_numpy(dtype=object)[rows]
            unlabeled = np.array([s not in ("train", "val", "test") for s in split], dtype=bool)
            if unlabeled.any():
                raise ValueError(
                    f"{self.name}: entries {list(self.ids[rows][unlabeled][:10])} have {target!r} but no "
                    "train/val/test label"
                )
        return PropertyTask(target, self.ids[rows], self.structures[rows], y[rows], split, rows)


def select_rows(all_ids: Sequence, ids=None, limit=None, sample=None, random_state=0) -> np.ndarray:
    """Rows to load: all, the given ``ids`` (in that order), the first ``limit``, or a seeded random
    ``sample`` of that many (in file order). At most one of ids/limit/sample."""
    n = len(all_ids)
    if sum(x is not None for x in (ids, limit, sample)) > 1:
        raise ValueError("pass at most one of ids=, limit=, sample=")
    if ids is not None:
        position = {sid: i for i, sid in enumerate(all_ids)}
        unknown = [sid for sid in ids if sid not in position]
        if unknown:
            raise KeyError(f"{len(unknown)} ids not in the file: {unknown[:10]}")
        return np.array([position[sid] for sid in ids], dtype=np.int64)
    if limit is not None:
        if int(limit) < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return np.arange(min(int(limit), n))
    if sample is not None:
        if not 0 <= int(sample) <= n:
            raise ValueError(f"sample={sample} but the file has {n} entries")
        rng = np.random.default_rng(random_state)
        return np.sort(rng.choice(n, size=int(sample), replace=False))
    return np.arange(n)


def check_unique(ids: Sequence, source: str) -> None:
    """Raise if an id occurs twice."""
    dup = [sid for sid, count in Counter(ids).items() if count > 1]
    if dup:
        raise ValueError(f"{source}: duplicate ids {dup[:10]}")


def float_column(values: Sequence, name: str, ids: Sequence, source: str) -> np.ndarray:
    """Numbers (None/NaN kept as NaN) to float64; anything else raises naming the entry."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise ValueError(f"{source}: entry {i} (id={ids[i]!r}) has non-numeric {name}={v!r}")
    return out


def id_frame(columns: dict, ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.Index(ids, name="id"))
