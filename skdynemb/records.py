"""Record sources: collections of structure records read lazily, one record at a time.

:func:`open_source` opens a folder of CIF/POSCAR files, or a JSON / JSON.GZ / .BZ2 file holding a
list of records or a pandas "columns" / "split" table (matminer's ``store_dataframe_as_json``),
as a :class:`RecordSource`: the ids (read and checked in one light pass), then the raw structures
streamed in input order (:meth:`RecordSource.records`). :func:`pick_field` chooses the id and
structure fields; :func:`record_hash` is the content hash of one raw record.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Field names tried, in order, when ``id_field`` / ``structure_field`` are not given.
ID_FIELDS = ("id", "material_id", "jid", "mpid", "task_id")
STRUCTURE_FIELDS = ("structure", "cif", "atoms", "poscar")
#: Files of a folder input that are read as structures (by suffix, or by name prefix).
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")
STRUCTURE_PREFIXES = ("POSCAR", "CONTCAR")


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
        try:
            data = self.fh.read(max(self.block, len(self.buf) - self.pos))
        except (EOFError, OSError, UnicodeDecodeError, zlib.error) as exc:  # gzip/bz2 cut short or corrupt
            raise ValueError(
                f"{self.name}: cannot be read to its end, a compressed file cut short or corrupt "
                f"({type(exc).__name__}: {exc})"
            ) from exc
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
    """A structure collection read lazily: ``ids`` in input order, :meth:`records` streams them.

    Build it with :func:`open_source`.

    Attributes
    ----------
    path : Path
        The folder or JSON file.
    ids : list of str
        The ids, in input order.
    """

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


#: characters an id may not hold: NUL (numpy's string arrays drop it, so "a\\0" and "a" would
#: collide in an ``.npz``), other control characters, and line breaks (ids are lines in messages)
_BAD_ID_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _check_unique(ids: list[str], path: Path) -> list[str]:
    """``ids`` if they are unique text without control characters (else a ValueError naming one)."""
    first: dict[str, int] = {}
    for i, sample_id in enumerate(ids):
        bad = _BAD_ID_CHARS.search(sample_id)
        if bad:
            raise ValueError(
                f"{path}: record {i} has the id {sample_id!r}, which holds the control character "
                f"{bad.group()!r}; ids must be printable text"
            )
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
    """The field to read: ``name`` if ``keys`` holds it, else the first of ``candidates`` found there.

    Parameters
    ----------
    name : str or None
        The field asked for (None: pick from ``candidates``).
    candidates : tuple of str
        Usual names of the field, in order of preference.
    keys : collection of str
        The fields the input has.
    what : str
        What the field holds (``"id"``, ``"structure"``), for messages.
    where : str
        The input, for messages.
    option : str
        The option that sets the field (e.g. ``"--id-field"``), for messages.

    Returns
    -------
    field : str
        The field to read.

    Raises
    ------
    ValueError
        ``name`` is not in ``keys``, or no candidate is; naming ``where`` and ``option``.
    """
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


def _under_key(path: Path, key: str, walk: str) -> Iterator:
    """Stream what the top-level ``key`` of the JSON object in ``path`` holds, skipping the other
    keys: ``walk="keys"`` yields ``(name, value)`` of an object, ``"items"`` the items of a list."""
    with _open_text(path) as fh:
        reader = _JsonReader(fh, str(path))
        for top in reader.keys():
            if top != key:
                reader.value()
                continue
            if walk == "keys":
                for name in reader.keys():
                    yield name, reader.value()
            else:
                yield from reader.items()
            return


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
        for i, (_, structure) in enumerate(_under_key(path, structure_field, "keys")):
            yield ids[i], structure

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
            structure_field = pick_field(
                structure_field, STRUCTURE_FIELDS, columns, "structure", where, "--structure-field"
            )
            id_col = None
            if id_field is not None:
                id_col = columns.index(pick_field(id_field, (), columns, "id", where, "--id-field"))
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
        for i, row in enumerate(_under_key(path, "data", "items")):
            yield ids[i], row[structure_col]

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

    Parameters
    ----------
    path : str or Path
        The folder or JSON file.
    id_field : str, optional
        Field (or column) holding the ids of JSON input.
    structure_field : str, optional
        Field (or column) holding the structures of JSON input.

    Returns
    -------
    source : RecordSource
        Its ``ids`` (input order); ``records()`` streams ``(index, id, raw structure)``.
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


def record_hash(raw) -> str:
    """Content hash of one raw record (a file's bytes, CIF/POSCAR text, or a structure dict's JSON).

    Parameters
    ----------
    raw : Path, str or dict
        A structure file, structure text, or a structure dict.

    Returns
    -------
    digest : str
        The first 32 hexadecimal digits of its SHA-256.
    """
    if isinstance(raw, Path):
        data = raw.read_bytes()
    elif isinstance(raw, str):
        data = raw.encode()
    else:
        data = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]
