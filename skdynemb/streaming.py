"""Streaming, resumable extraction of dynamic embeddings from large structure collections to a file.

Inputs are read lazily (:func:`open_source`): a folder of CIF/POSCAR files, or a JSON / JSON.GZ
file holding a list of records or a pandas "columns" table, walked element by element so that
only one chunk of structures is ever held in memory. Features are written per chunk as parquet
part files under ``OUTPUT.parts/`` (each one written atomically, with the ids it covers), then
merged into ``OUTPUT`` (``.parquet`` or ``.npz``). An interrupted run (crash, Ctrl-C, kill) is
resumed by running the same extraction again: finished chunks are checked and skipped, and the
result is identical to an uninterrupted run, one row (set) per input structure, in input order.
"""

from __future__ import annotations

import bz2
import copy
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from joblib import Parallel, delayed
from sklearn.base import clone
from tqdm.auto import tqdm

from skdynemb._files import atomic_write, remove_stale_temporaries
from skdynemb._workers import exit_with_parent
from skdynemb.embeddings import ElementEmbeddings
from skdynemb.errors import InvalidStructureError
from skdynemb.provenance import digest
from skdynemb.structures import to_crystal
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

#: Field names tried, in order, when ``id_field`` / ``structure_field`` are not given.
ID_FIELDS = ("id", "material_id", "jid", "mpid", "task_id")
STRUCTURE_FIELDS = ("structure", "cif", "atoms", "poscar")
#: Files of a folder input that are read as structures (by suffix, or by name prefix).
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")
STRUCTURE_PREFIXES = ("POSCAR", "CONTCAR")
OUTPUT_FORMATS = (".parquet", ".npz")
_MANIFEST_VERSION = 2
_META_KEY = b"skdynemb"


# ----------------------------------------------------------------------------- reading inputs
class _JsonReader:
    """Walk one JSON document incrementally: containers step by step, leaf values decoded whole.

    Uses the standard library decoder (C-accelerated; accepts the NaN / Infinity that
    Python's ``json`` writes), reading ``block`` characters at a time.
    """

    _decoder = json.JSONDecoder()
    _space = re.compile(r"[ \t\n\r]*")
    _number_chars = frozenset("0123456789.eE+-")

    def __init__(self, fh, name: str, block: int = 1 << 20):
        self.fh, self.name, self.block = fh, name, block
        self.buf, self.pos, self.eof = "", 0, False

    def _fill(self) -> bool:
        data = self.fh.read(max(self.block, len(self.buf) - self.pos))
        if not data:
            self.eof = True
            return False
        self.buf, self.pos = self.buf[self.pos :] + data, 0
        return True

    def peek(self) -> str:
        """Next non-space character ('' at the end) without consuming it."""
        while True:
            self.pos = self._space.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ValueError(f"{self.name}: invalid JSON, expected {char!r} but found {found or 'end of file'!r}")
        self.pos += 1

    def value(self):
        """Decode the next complete value."""
        self.peek()
        while True:
            try:
                obj, end = self._decoder.raw_decode(self.buf, self.pos)
                # a number cut by the buffer's end ("7." of "7.5") decodes early: read more first
                if self.eof or (end < len(self.buf) and self.buf[end] not in self._number_chars):
                    self.pos = end
                    return obj
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise ValueError(f"{self.name}: invalid JSON: {exc.msg}") from None
            self._fill()

    def _members(self, open_char: str, close_char: str) -> Iterator[None]:
        self.expect(open_char)
        if self.peek() == close_char:
            self.pos += 1
            return
        while True:
            yield None
            found = self.peek()
            self.pos += 1
            if found == close_char:
                return
            if found != ",":
                raise ValueError(f"{self.name}: invalid JSON, expected ',' or {close_char!r}, found {found!r}")

    def items(self) -> Iterator[object]:
        """Values of the array at the current position."""
        for _ in self._members("[", "]"):
            yield self.value()

    def keys(self) -> Iterator[str]:
        """Keys of the object at the current position; the caller reads (or skips) each value."""
        for _ in self._members("{", "}"):
            key = self.value()
            if not isinstance(key, str):
                raise ValueError(f"{self.name}: invalid JSON, object key {key!r} is not a string")
            self.expect(":")
            yield key


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    if magic == b"BZh":  # matminer's store_dataframe_as_json(..., compression="bz2")
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


@dataclass
class RecordSource:
    """A structure collection read lazily: ``ids`` in input order, :meth:`records` streams them."""

    path: Path
    ids: list[str]
    _iterate: Callable[[], Iterator[tuple[str, object]]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> Iterator[tuple[int, str, object]]:
        """Yield ``(index, id, raw structure)``: a path, a structure dict, or CIF/POSCAR text."""
        count = 0
        for index, (sample_id, raw) in enumerate(self._iterate()):
            if index >= len(self.ids) or sample_id != self.ids[index]:
                raise ValueError(f"{self.path} changed while being read (record {index})")
            count += 1
            yield index, sample_id, raw
        if count != len(self.ids):
            raise ValueError(f"{self.path} changed while being read ({count} records, expected {len(self.ids)})")


def _check_unique(ids: list[str], path: Path) -> list[str]:
    first: dict[str, int] = {}
    for i, sample_id in enumerate(ids):
        if sample_id in first:
            raise ValueError(
                f"{path}: duplicate id {sample_id!r} (records {first[sample_id]} and {i}); ids must be unique"
            )
        first[sample_id] = i
    if not ids:
        raise ValueError(f"{path}: no structures found")
    return ids


def _is_structure_file(path: Path) -> bool:
    return path.is_file() and (
        path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.upper().startswith(STRUCTURE_PREFIXES)
    )


def _folder_source(folder: Path) -> RecordSource:
    files = sorted(p for p in folder.iterdir() if _is_structure_file(p))
    ids = _check_unique([p.stem for p in files], folder)
    return RecordSource(folder, ids, lambda: ((p.stem, p) for p in files))


def pick_field(name: str | None, candidates: tuple[str, ...], keys, what: str, where: str, option: str) -> str:
    """The field to read: ``name`` if ``keys`` holds it, else the first of ``candidates`` found there;
    otherwise a ValueError naming ``where`` and the ``option`` that sets it."""
    if name is not None:
        if name not in keys:
            raise ValueError(f"{where} has no {what} field {name!r} (fields: {sorted(keys)})")
        return name
    for candidate in candidates:
        if candidate in keys:
            return candidate
    raise ValueError(
        f"{where} has none of the usual {what} fields {list(candidates)}; pass {option} (fields: {sorted(keys)})"
    )


def _record_ids(path: Path, id_field, structure_field) -> tuple[list[str], str, str]:
    """First pass over a list of records: ids (validated), and the fields to read."""
    ids = []
    with _open_text(path) as fh:
        for i, record in enumerate(_JsonReader(fh, str(path)).items()):
            if not isinstance(record, dict):
                raise ValueError(f"{path}: record {i} is a {type(record).__name__}, expected an object")
            if i == 0:
                id_field = pick_field(id_field, ID_FIELDS, record, "id", f"{path}: record 0", "--id-field")
                structure_field = pick_field(
                    structure_field, STRUCTURE_FIELDS, record, "structure", f"{path}: record 0", "--structure-field"
                )
            for name in (id_field, structure_field):
                if record.get(name) is None:
                    raise ValueError(f"{path}: record {i} has no {name!r} value")
            ids.append(str(record[id_field]))
    return ids, id_field, structure_field


def _records_source(path: Path, id_field, structure_field) -> RecordSource:
    ids, id_field, structure_field = _record_ids(path, id_field, structure_field)

    def iterate():
        with _open_text(path) as fh:
            for record in _JsonReader(fh, str(path)).items():
                yield str(record[id_field]), record[structure_field]

    return RecordSource(path, _check_unique(ids, path), iterate)


def _columns_ids(path: Path, id_field, structure_field) -> tuple[list[str], str]:
    """First pass over a pandas "columns" table: ids (the index, or ``id_field``'s values)."""
    keys, id_values, columns = None, None, []
    with _open_text(path) as fh:
        reader = _JsonReader(fh, str(path))
        for column in reader.keys():
            columns.append(column)
            is_structure = column == structure_field or (structure_field is None and column in STRUCTURE_FIELDS)
            if keys is None and is_structure:
                structure_field, keys = column, []
                for key in reader.keys():
                    keys.append(key)
                    reader.value()
            elif column == id_field:
                id_values = reader.value()
            else:
                reader.value()
    if keys is None:
        pick_field(structure_field, STRUCTURE_FIELDS, columns, "structure", f"{path}: table", "--structure-field")
    if id_field is None:
        return keys, structure_field
    if id_values is None:
        raise ValueError(f"{path}: table has no id column {id_field!r} (columns: {sorted(columns)})")
    missing = [k for k in keys if id_values.get(k) is None]
    if missing:
        raise ValueError(f"{path}: row {missing[0]!r} has no {id_field!r} value")
    return [str(id_values[k]) for k in keys], structure_field


def _columns_source(path: Path, id_field, structure_field) -> RecordSource:
    ids, structure_field = _columns_ids(path, id_field, structure_field)

    def iterate():
        with _open_text(path) as fh:
            reader = _JsonReader(fh, str(path))
            for column in reader.keys():
                if column != structure_field:
                    reader.value()
                    continue
                for i, _ in enumerate(reader.keys()):
                    yield ids[i], reader.value()
                return

    return RecordSource(path, _check_unique(ids, path), iterate)


#: top-level keys of a pandas "split" table, as matminer's ``store_dataframe_as_json`` writes it
_SPLIT_KEYS = ("index", "columns", "data")


def _split_ids(path: Path, id_field, structure_field) -> tuple[list[str], int]:
    """First pass over a pandas "split" table: ids (the index, or ``id_field``'s values), and the
    position of the structure column. Rows are read one at a time."""
    index, columns, id_values, n_rows, where = None, None, [], 0, f"{path}: table"
    with _open_text(path) as fh:
        reader = _JsonReader(fh, str(path))
        for key in reader.keys():
            if key != "data":
                value = reader.value()
                index = value if key == "index" else index
                columns = [str(c) for c in value] if key == "columns" else columns
                continue
            if columns is None:
                raise ValueError(f"{path}: 'data' comes before 'columns' in this pandas 'split' table")
            structure_field = pick_field(structure_field, STRUCTURE_FIELDS, columns, "structure", where, "--structure-field")
            id_col = None if id_field is None else columns.index(pick_field(id_field, (), columns, "id", where, "--id-field"))
            for i, row in enumerate(reader.items()):
                if not isinstance(row, list) or len(row) != len(columns):
                    raise ValueError(f"{path}: row {i} is not a list of {len(columns)} values (columns {columns})")
                if id_col is not None:
                    if row[id_col] is None:
                        raise ValueError(f"{path}: row {i} has no {id_field!r} value")
                    id_values.append(str(row[id_col]))
                n_rows += 1
    if columns is None or (id_field is None and index is None):
        raise ValueError(f"{path}: a pandas 'split' table needs 'columns'{'' if id_field else ', index'} and 'data'")
    ids = id_values if id_field is not None else [str(i) for i in index]
    if len(ids) != n_rows:
        raise ValueError(f"{path}: {len(ids)} index labels for {n_rows} rows")
    return ids, columns.index(structure_field)


def _split_source(path: Path, id_field, structure_field) -> RecordSource:
    ids, structure_col = _split_ids(path, id_field, structure_field)

    def iterate():
        with _open_text(path) as fh:
            reader = _JsonReader(fh, str(path))
            for key in reader.keys():
                if key != "data":
                    reader.value()
                    continue
                for i, row in enumerate(reader.items()):
                    yield ids[i], row[structure_col]
                return

    return RecordSource(path, _check_unique(ids, path), iterate)


def _is_split_table(path: Path) -> bool:
    """A "split" table starts with one of its keys holding a list ("columns" tables hold objects)."""
    with _open_text(path) as fh:
        reader = _JsonReader(fh, str(path))
        return next(reader.keys(), None) in _SPLIT_KEYS and reader.peek() == "["


def open_source(path, id_field: str | None = None, structure_field: str | None = None) -> RecordSource:
    """Open a structure collection for streaming; reads ids (one light pass) and checks them.

    ``path``: a folder of CIF/POSCAR files (ids = file stems), or a JSON / JSON.GZ file with
    either a list of records (``id_field`` + ``structure_field`` per record; the structure a
    pymatgen dict or CIF/POSCAR text) or a pandas "columns" or "split" table (ids = the row index,
    or the ``id_field`` column; "split" is what matminer's ``store_dataframe_as_json`` writes, also
    bz2-compressed). Field names default to the first of :data:`ID_FIELDS` /
    :data:`STRUCTURE_FIELDS` present. Duplicate or missing ids raise ``ValueError``.
    """
    path = Path(path)
    if path.is_dir():
        if id_field is not None or structure_field is not None:
            raise ValueError("id_field / structure_field apply to JSON input; a folder's ids are its file stems")
        return _folder_source(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such input: {str(path)!r}")
    with _open_text(path) as fh:
        try:
            first = _JsonReader(fh, str(path)).peek()
        except UnicodeDecodeError:
            first = ""
    if first == "[":
        return _records_source(path, id_field, structure_field)
    if first == "{":
        if _is_split_table(path):
            return _split_source(path, id_field, structure_field)
        return _columns_source(path, id_field, structure_field)
    raise ValueError(
        f"{path}: expected a folder of CIF/POSCAR files, or a JSON (or JSON.GZ / .BZ2) list of records or "
        "pandas 'columns' / 'split' table (matminer's store_dataframe_as_json)"
    )


# ----------------------------------------------------------------------------- features per piece
def _schema(feature_names, pooling: str) -> pa.Schema:
    head = [pa.field("id", pa.string())]
    if pooling == "element":
        head += [pa.field("element", pa.string()), pa.field("fraction", pa.float64())]
    return pa.schema(head + [pa.field(str(name), pa.float32()) for name in feature_names])


def _table(transformer, compounds, schema: pa.Schema) -> pa.Table:
    names = transformer.get_feature_names_out()
    if not compounds:
        return schema.empty_table()
    if transformer.pooling == "mean":
        head = [[c.id for c in compounds]]
        features = np.asarray(ElementEmbeddings(compounds, names).mean(), dtype=np.float32)
    else:
        head = [
            [c.id for c in compounds for _ in c.elements],
            [e for c in compounds for e in c.elements],
            np.concatenate([c.fractions for c in compounds]),
        ]
        features = np.concatenate([c.features for c in compounds]).astype(np.float32)
    columns = [*head, *(features[:, k] for k in range(len(names)))]
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)


def _featurize(transformer, records, schema: pa.Schema, skip_invalid: bool, parent: int):
    """Parse, check and featurize one piece of records: ``(table or None, errors, warnings)``.

    Errors are returned as ``(index, id, reason)`` rather than raised, so that they cross
    process boundaries intact: every structure that cannot be read, or that the backbone cannot
    featurize, by its global index. Nothing more is computed once one is found when
    ``skip_invalid`` is off. Warnings come back as data too, for the caller to re-issue.
    """
    exit_with_parent(parent)
    crystals, indices, errors = [], [], []
    with warnings.catch_warnings(record=True) as caught:
        for index, sample_id, raw in records:
            try:
                if isinstance(raw, str) and "\n" not in raw.strip():
                    raise InvalidStructureError(index, sample_id, "structure field holds one line, not CIF/POSCAR text")
                crystals.append(to_crystal(raw, index=index, id=sample_id))
                indices.append(index)
            except InvalidStructureError as exc:
                errors.append((index, sample_id, exc.problem))
        if errors and not skip_invalid:
            return None, errors, [w.message for w in caught]
        compounds, failed = transformer._compounds(crystals, indices, stop_on_error=not skip_invalid)
    errors = sorted(errors + failed, key=lambda e: e[0])
    if errors and not skip_invalid:
        return None, errors, [w.message for w in caught]
    return _table(transformer, [c for c in compounds if c is not None], schema), errors, [w.message for w in caught]


# ----------------------------------------------------------------------------- parts and manifest
def parts_dir(output) -> Path:
    """Folder holding the finished chunks of an unfinished extraction to ``output``."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def errors_path(output) -> Path:
    """CSV listing the structures skipped as invalid (``index,id,reason``)."""
    output = Path(output)
    return output.with_name(output.name + ".errors.csv")


def _part_path(parts: Path, chunk: int) -> Path:
    return parts / f"part-{chunk:06d}.parquet"


def record_hash(raw) -> str:
    """Content hash of one raw record (a file's bytes, CIF/POSCAR text, or a structure dict's JSON)."""
    if isinstance(raw, Path):
        data = raw.read_bytes()
    elif isinstance(raw, str):
        data = raw.encode()
    else:
        data = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def _write_part(
    parts: Path, chunk: int, table: pa.Table, ids: list[str], errors: list, hashes: list[str], settings: str
) -> None:
    """A finished chunk: its rows, plus the ids, content hashes and settings digest it was computed for."""
    meta = {"chunk": chunk, "ids": ids, "sha256": hashes, "settings": settings, "errors": [list(e) for e in errors]}
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta)})
    atomic_write(_part_path(parts, chunk), lambda tmp: pq.write_table(table, tmp))


def _part_meta(parts: Path, chunk: int) -> dict | None:
    """The metadata of a finished chunk, or None when absent or unreadable."""
    path = _part_path(parts, chunk)
    if not path.exists():
        return None
    try:
        return json.loads(pq.read_schema(path).metadata[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def _prepare_parts(parts: Path, manifest: dict) -> None:
    """Create ``parts`` with its manifest, or check that it belongs to the same extraction."""
    path = parts / "manifest.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
        if diff:
            raise ValueError(
                f"{parts} holds an unfinished extraction with other settings or input (differs in: "
                f"{', '.join(diff)}); run it again with the same settings to resume, or overwrite to start over"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))
    remove_stale_temporaries(parts)  # left by a run killed while writing


# ----------------------------------------------------------------------------- merging
def _row_ids(table: pa.Table, pooling: str) -> list[str]:
    ids = table.column("id").to_pylist()
    if pooling == "mean":
        return ids
    return [sid for i, sid in enumerate(ids) if i == 0 or ids[i - 1] != sid]


def _read_parts(parts: Path, n_chunks: int, chunk_ids, chunk_hashes: dict, settings: str, pooling: str):
    """Yield (table, errors) per chunk in order, checking each covers exactly its ids, for the
    same content (``chunk_hashes``, as read in this run) and settings."""
    for k in range(n_chunks):
        meta = _part_meta(parts, k)
        expected = chunk_ids(k)
        if not _part_matches(meta, expected, chunk_hashes[k], settings):
            raise RuntimeError(
                f"{_part_path(parts, k)} is missing or does not hold chunk {k} of this input; run again to redo it"
            )
        table = pq.read_table(_part_path(parts, k))
        skipped = {e[1] for e in meta["errors"]}
        if _row_ids(table, pooling) != [sid for sid in expected if sid not in skipped]:
            raise RuntimeError(
                f"{_part_path(parts, k)}: rows do not match the ids of chunk {k}; delete it and run again"
            )
        yield table.replace_schema_metadata(None), meta["errors"]


def _write_npz(tmp: str, tables: list[pa.Table], pooling: str, feature_names) -> None:
    table = pa.concat_tables(tables)
    arrays = {
        "ids": np.asarray(table.column("id").to_pylist(), dtype=str),
        "feature_names": np.asarray(feature_names, dtype=str),
        "features": np.stack([table.column(str(n)).to_numpy() for n in feature_names], axis=1),
    }
    if pooling == "element":
        arrays["elements"] = np.asarray(table.column("element").to_pylist(), dtype=str)
        arrays["fractions"] = table.column("fraction").to_numpy()
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


@dataclass
class ExtractionSummary:
    """What :func:`extract_to_file` wrote.

    n_structures: input structures; n_rows: rows written (per structure for ``"mean"``, per
    element for ``"element"``); errors: ``(index, id, reason)`` of skipped structures, listed in
    ``errors_file`` (None when there are none); resumed_chunks: chunks found finished on disk.
    """

    output: Path
    n_structures: int
    n_rows: int
    errors: list[tuple[int, str, str]]
    errors_file: Path | None
    resumed_chunks: int


# ----------------------------------------------------------------------------- driver
def _part_matches(meta: dict | None, ids: list[str], hashes: list[str], settings: str) -> bool:
    return meta is not None and meta["ids"] == ids and meta.get("sha256") == hashes and meta.get("settings") == settings


def _changed(meta: dict, ids: list[str], hashes: list[str]) -> str:
    """Which records of a finished chunk differ from the input now (for messages)."""
    old = meta.get("sha256") or [None] * len(ids)
    changed = [sid for sid, a, b in zip(ids, old, hashes) if a != b]
    shown = ", ".join(repr(c) for c in changed[:5]) + (" ..." if len(changed) > 5 else "")
    return f"{len(changed)} structure(s) changed since it was written ({shown})"


def _settings(transformer, source: RecordSource, chunk_size: int) -> dict:
    """What a resumed run must share with the finished chunks: the settings, and the backbone's
    whole identity (weights, graph settings, code versions; see :mod:`skdynemb.provenance`).
    The structures themselves are checked chunk by chunk, by content hash."""
    ids_hash = hashlib.sha256("\n".join(source.ids).encode()).hexdigest()
    return {
        "version": _MANIFEST_VERSION,
        "ids_sha256": ids_hash,
        "n_structures": len(source),
        "chunk_size": chunk_size,
        "backbone": transformer.backbone,
        "fingerprint": transformer.fingerprint_,
        "backbone_identity": digest(transformer.backbone_identity_),
        "standardize": transformer.standardize,
        "layers": list(transformer.layers_),
        "pooling": transformer.pooling,
        "compound_features": transformer.compound_features,
        "feature_names": [str(n) for n in transformer.get_feature_names_out()],
    }


def _chunks(records: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def extract_to_file(
    source,
    output,
    transformer: DynamicEmbeddingTransformer | None = None,
    *,
    chunk_size: int = 1000,
    id_field: str | None = None,
    structure_field: str | None = None,
    skip_invalid: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract embeddings of every structure in ``source`` into ``output``, chunk by chunk, resumably.

    Parameters
    ----------
    source : path or RecordSource
        See :func:`open_source` (``id_field`` / ``structure_field`` are passed to it).
    output : str or Path
        Ending in ``.parquet`` or ``.npz``.
        ``pooling="mean"``: columns ``id`` + features (npz: ``ids``, ``features`` (n, d),
        ``feature_names``). ``pooling="element"``: one row per (structure, element) with ``id``,
        ``element``, ``fraction`` + features (npz adds ``elements``, ``fractions``). Parquet is
        written part by part; npz is assembled in memory.
    transformer : DynamicEmbeddingTransformer, optional
        Default: one with its default parameters.
        Backbone, layer, pooling, batch size, device and ``n_jobs``. Fitted here if needed (a
        clone; yours is left as is). With ``n_jobs`` > 1 each batch is parsed and featurized
        by a joblib worker (any backend: loky, or dask under ``joblib.parallel_config("dask")``).
    chunk_size : int
        Structures per part file: the unit of memory use and of resumption.
    skip_invalid : bool
        False: the first structure that cannot be read or featurized raises
        :class:`~skdynemb.errors.InvalidStructureError` naming it (finished chunks are kept).
        True: such structures are left out and listed in ``OUTPUT.errors.csv``.
    overwrite : bool
        Replace an existing ``output`` and discard unfinished parts; otherwise an existing
        ``output`` is an error and unfinished parts of the same extraction are resumed.
    """
    output = Path(output)
    if output.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"output must end in one of {OUTPUT_FORMATS}, got {str(output)!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    parts = parts_dir(output)
    if overwrite:
        shutil.rmtree(parts, ignore_errors=True)
        output.unlink(missing_ok=True)
        errors_path(output).unlink(missing_ok=True)
    elif output.exists():
        raise FileExistsError(f"{output} exists; overwrite it (--overwrite) or choose another output")
    transformer = DynamicEmbeddingTransformer() if transformer is None else transformer
    fitted = transformer if hasattr(transformer, "backbone_") else clone(transformer).fit()
    if not isinstance(source, RecordSource):
        source = open_source(source, id_field, structure_field)
    settings = _settings(fitted, source, chunk_size)
    _prepare_parts(parts, settings)

    n_chunks = -(-len(source) // chunk_size)
    chunk_ids = lambda k: source.ids[k * chunk_size : (k + 1) * chunk_size]  # noqa: E731
    settings_digest = digest(settings)
    done = {}  # chunk -> metadata of its finished part, checked against the input as it is read
    for k in range(n_chunks):
        meta = _part_meta(parts, k)
        if meta is not None and meta["ids"] == chunk_ids(k):
            done[k] = meta
        elif _part_path(parts, k).exists():
            warnings.warn(f"{_part_path(parts, k)} is unreadable or stale; computing chunk {k} again", stacklevel=2)

    schema = _schema(fitted.get_feature_names_out(), fitted.pooling)
    worker = copy.copy(fitted).set_params(progress=False, n_jobs=None)
    n_jobs, batch = fitted.n_jobs, fitted.batch_size_
    parent, chunk_hashes, resumed = os.getpid(), {}, 0
    with tqdm(total=len(source), unit="structure", desc="extract", disable=not progress) as bar:
        for k, chunk in enumerate(_chunks(source.records(), chunk_size)):
            ids = [r[1] for r in chunk]
            chunk_hashes[k] = hashes = [record_hash(r[2]) for r in chunk]
            if k in done:
                if _part_matches(done[k], ids, hashes, settings_digest):
                    resumed += 1
                    bar.update(len(chunk))
                    continue
                reason = (
                    "was written with other settings" if done[k].get("settings") != settings_digest
                    else _changed(done[k], ids, hashes)
                )
                warnings.warn(
                    f"{_part_path(parts, k)}: chunk {k} of {source.path} {reason}; computing it again "
                    "(its old rows are not used)",
                    stacklevel=2,
                )
            pieces = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
            if n_jobs in (None, 1):
                results = (_featurize(worker, piece, schema, skip_invalid, parent) for piece in pieces)
            else:  # a new Parallel per chunk: one whose generator was not run to its end refuses new tasks
                results = Parallel(n_jobs=n_jobs, return_as="generator")(
                    delayed(_featurize)(worker, piece, schema, skip_invalid, parent) for piece in pieces
                )
            tables, errors = [], []
            for piece, (table, piece_errors, caught) in zip(pieces, results):
                for message in caught:  # warnings of the workers (e.g. close contacts), here
                    warnings.warn(message, stacklevel=2)
                if piece_errors and not skip_invalid:
                    raise InvalidStructureError(*piece_errors[0])
                tables.append(table)
                errors.extend(piece_errors)
                bar.update(len(piece))
            _write_part(parts, k, pa.concat_tables(tables), ids, errors, hashes, settings_digest)
    return _merge(parts, output, n_chunks, chunk_ids, chunk_hashes, fitted, settings, skip_invalid, resumed)


def _merge(
    parts, output, n_chunks, chunk_ids, chunk_hashes, fitted, settings, skip_invalid, resumed
) -> ExtractionSummary:
    pooling, names = fitted.pooling, settings["feature_names"]
    schema = _schema(names, pooling)
    keys = ("backbone", "fingerprint", "backbone_identity", "layers", "pooling", "compound_features", "standardize")
    provenance = {k: settings[k] for k in keys}
    provenance["weights"] = None if fitted.weights is None else str(fitted.weights)
    every_record = "".join(h for k in range(n_chunks) for h in chunk_hashes[k])
    provenance["input_sha256"] = hashlib.sha256(every_record.encode()).hexdigest()
    settings_digest = digest(settings)
    schema = schema.with_metadata({_META_KEY: json.dumps(provenance)})
    errors, n_rows = [], 0

    def write_parquet(tmp):
        nonlocal n_rows
        with pq.ParquetWriter(tmp, schema) as writer:
            for table, chunk_errors in _read_parts(parts, n_chunks, chunk_ids, chunk_hashes, settings_digest, pooling):
                writer.write_table(table.cast(schema))
                errors.extend(chunk_errors)
                n_rows += len(table)

    def write_npz(tmp):
        nonlocal n_rows
        tables = []
        for table, chunk_errors in _read_parts(parts, n_chunks, chunk_ids, chunk_hashes, settings_digest, pooling):
            tables.append(table)
            errors.extend(chunk_errors)
        n_rows = sum(len(t) for t in tables)
        _write_npz(tmp, tables, pooling, names)

    atomic_write(output, write_parquet if output.suffix == ".parquet" else write_npz)
    errors = [tuple(e) for e in errors]
    if errors and not skip_invalid:
        output.unlink()
        raise InvalidStructureError(*errors[0])
    errors_file = errors_path(output)
    errors_file.unlink(missing_ok=True)
    if errors:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([("index", "id", "reason"), *errors])
        atomic_write(errors_file, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    shutil.rmtree(parts)
    n_structures = settings["n_structures"]
    return ExtractionSummary(output, n_structures, n_rows, errors, errors_file if errors else None, resumed)
