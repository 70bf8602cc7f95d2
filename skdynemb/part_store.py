"""The part-file store of a streaming extraction: ``OUTPUT.parts/``, its manifest and its parts.

One parquet file per finished chunk (``part-000000.parquet``, ...), written atomically with the
ids, content hashes and settings digest it was computed for in its schema metadata, beside a
``manifest.json`` holding the settings of the whole extraction. Reading a part back checks that
it covers exactly the chunk's ids, for the same content and settings, so that a resumed run never
serves rows computed from other input. The driver is :mod:`skdynemb.streaming`.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from skdynemb._files import atomic_write, remove_stale_temporaries
from skdynemb._optional import needs_extra
from skdynemb.embeddings import ElementEmbeddings

#: what needs pyarrow, for the message when it is missing (the ``parquet`` extra)
PARQUET_USERS = "streaming extraction (skdynemb.streaming, skdynemb extract: its part files are parquet)"

with needs_extra(PARQUET_USERS):
    import pyarrow as pa
    import pyarrow.parquet as pq

#: schema-metadata key of a part's (and the merged output's) JSON metadata
META_KEY = b"skdynemb"


# ----------------------------------------------------------------------------- rows as tables
def schema(feature_names, pooling: str) -> pa.Schema:
    """Columns of a part and of the parquet output: ``id`` (+ ``element``, ``fraction``), features.

    Parameters
    ----------
    feature_names : sequence of str
        The feature columns (float32).
    pooling : {"mean", "element"}
        ``"element"`` adds the ``element`` (str) and ``fraction`` (float64) columns.

    Returns
    -------
    schema : pyarrow.Schema
        The columns, in order.
    """
    head = [pa.field("id", pa.string())]
    if pooling == "element":
        head += [pa.field("element", pa.string()), pa.field("fraction", pa.float64())]
    return pa.schema(head + [pa.field(str(name), pa.float32()) for name in feature_names])


def to_table(transformer, compounds, table_schema: pa.Schema) -> pa.Table:
    """The rows of ``compounds`` (fitted ``transformer``'s pooling and feature names) as a table.

    Parameters
    ----------
    transformer : DynamicEmbeddingTransformer
        The fitted transformer that made the compounds (its ``pooling`` and feature names).
    compounds : list of CompoundEmbedding
        Its per-element output for a chunk of structures.
    table_schema : pyarrow.Schema
        The columns (:func:`schema`).

    Returns
    -------
    table : pyarrow.Table
        One row per compound (pooling "mean") or per element of each compound ("element").
    """
    names = transformer.get_feature_names_out()
    if not compounds:
        return table_schema.empty_table()
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
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, table_schema)]
    return pa.Table.from_arrays(arrays, schema=table_schema)


# ----------------------------------------------------------------------------- where things lie
def parts_dir(output) -> Path:
    """Folder holding the finished chunks of an unfinished extraction to ``output``.

    Parameters
    ----------
    output : str or Path
        The extraction's output file.

    Returns
    -------
    path : Path
        ``OUTPUT.parts`` beside the output.
    """
    output = Path(output)
    return output.with_name(output.name + ".parts")


def errors_path(output) -> Path:
    """CSV listing the structures skipped as invalid (``index,id,reason``).

    Parameters
    ----------
    output : str or Path
        The extraction's output file.

    Returns
    -------
    path : Path
        ``OUTPUT.errors.csv`` beside the output.
    """
    output = Path(output)
    return output.with_name(output.name + ".errors.csv")


def part_path(parts: Path, chunk: int) -> Path:
    """The parquet file of finished chunk ``chunk``.

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    chunk : int
        The chunk's number, from 0.

    Returns
    -------
    path : Path
        ``parts/part-NNNNNN.parquet``.
    """
    return parts / f"part-{chunk:06d}.parquet"


class OutputBusyError(RuntimeError):
    """Another extraction is writing the same output (it holds ``OUTPUT.lock``)."""


def lock_path(output) -> Path:
    """The lock file held while an extraction writes ``output``.

    Parameters
    ----------
    output : str or Path
        The extraction's output file.

    Returns
    -------
    path : Path
        ``OUTPUT.lock`` beside the output.
    """
    output = Path(output)
    return output.with_name(output.name + ".lock")


@contextmanager
def output_lock(output):
    """Hold ``OUTPUT.lock`` (an exclusive ``flock``) for the body: one extraction per output at a time.

    A second extraction into the same output (another process, or another call of this one)
    raises :class:`OutputBusyError` naming the lock file at once, instead of both writing the
    same part files. The lock goes with the process (nothing stale stays locked after a kill);
    the file is removed on leaving.

    Parameters
    ----------
    output : str or Path
        The extraction's output file.

    Yields
    ------
    None
        The body runs holding the lock.

    Raises
    ------
    OutputBusyError
        Another extraction holds the lock.
    """
    import fcntl

    path = lock_path(output)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusyError(
                f"another extraction is writing {Path(output)} (it holds {path}); wait for it to finish, "
                "or choose another output"
            ) from None
        try:  # the file we locked may have been removed by the previous holder: lock the one on disk
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(fd)


def _refuse_link(parts: Path) -> None:
    if parts.is_symlink():
        raise ValueError(
            f"{parts} is a symbolic link (to {os.readlink(parts)!r}); the part files are written and "
            "deleted only in a real folder beside the output: remove the link"
        )


def discard_parts(parts: Path) -> None:
    """Delete the part folder (never through a symbolic link, which is an error instead).

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    """
    _refuse_link(parts)
    shutil.rmtree(parts, ignore_errors=True)


# ----------------------------------------------------------------------------- parts and manifest
def prepare_parts(parts: Path, manifest: dict) -> None:
    """Create ``parts`` with its manifest, or check that it belongs to the same extraction.

    ``parts`` must be a real folder: a symbolic link there is refused (a ``ValueError``), so
    that nothing is written or deleted where it points.

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    manifest : dict
        JSON-able description of the extraction (input, settings); a folder holding another
        manifest raises ``ValueError`` naming the keys that differ.
    """
    _refuse_link(parts)
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


def write_part(
    parts: Path, chunk: int, table: pa.Table, ids: list[str], errors: list, hashes: list[str], settings: str
) -> None:
    """Write a finished chunk: its rows, plus the ids, content hashes and settings digest it was computed for.

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    chunk : int
        The chunk's number.
    table : pyarrow.Table
        Its rows (:func:`to_table`).
    ids : list of str
        The ids of the chunk's structures (skipped ones included).
    errors : list of tuple
        ``(index, id, reason)`` of the structures skipped as invalid.
    hashes : list of str
        Content hash of each structure (:func:`skdynemb.records.record_hash`).
    settings : str
        Digest of the extraction's settings.
    """
    meta = {"chunk": chunk, "ids": ids, "sha256": hashes, "settings": settings, "errors": [list(e) for e in errors]}
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta)})
    atomic_write(part_path(parts, chunk), lambda tmp: pq.write_table(table, tmp))


def part_meta(parts: Path, chunk: int) -> dict | None:
    """The metadata of a finished chunk, or None when absent or unreadable.

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    chunk : int
        The chunk's number.

    Returns
    -------
    meta : dict or None
        ``chunk``, ``ids``, ``sha256``, ``settings`` and ``errors``, as :func:`write_part` wrote them.
    """
    path = part_path(parts, chunk)
    if not path.exists():
        return None
    try:
        return json.loads(pq.read_schema(path).metadata[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def part_matches(meta: dict | None, ids: list[str], hashes: list[str], settings: str) -> bool:
    """Whether a part's metadata says it holds exactly these ids, with this content and settings.

    Parameters
    ----------
    meta : dict or None
        The part's metadata (:func:`part_meta`).
    ids : list of str
        The chunk's ids now.
    hashes : list of str
        Their content hashes now.
    settings : str
        The settings digest now.

    Returns
    -------
    matches : bool
        True when the part can be reused.
    """
    return meta is not None and meta["ids"] == ids and meta.get("sha256") == hashes and meta.get("settings") == settings


def changed_records(meta: dict, ids: list[str], hashes: list[str]) -> str:
    """Which records of a finished chunk differ from the input now (for messages).

    Parameters
    ----------
    meta : dict
        The part's metadata (:func:`part_meta`).
    ids : list of str
        The chunk's ids.
    hashes : list of str
        Their content hashes now.

    Returns
    -------
    message : str
        How many changed, naming the first five.
    """
    old = meta.get("sha256") or [None] * len(ids)
    changed = [sid for sid, a, b in zip(ids, old, hashes) if a != b]
    shown = ", ".join(repr(c) for c in changed[:5]) + (" ..." if len(changed) > 5 else "")
    return f"{len(changed)} structure(s) changed since it was written ({shown})"


# ----------------------------------------------------------------------------- reading back
def _row_ids(table: pa.Table, pooling: str) -> list[str]:
    ids = table.column("id").to_pylist()
    if pooling == "mean":
        return ids
    return [sid for i, sid in enumerate(ids) if i == 0 or ids[i - 1] != sid]


def read_parts(parts: Path, n_chunks: int, chunk_ids, chunk_hashes: dict, settings: str, pooling: str):
    """Yield (table, errors) per chunk in order, checking each covers exactly its ids.

    Parameters
    ----------
    parts : Path
        The part folder (:func:`parts_dir`).
    n_chunks : int
        Number of chunks of the input.
    chunk_ids : callable
        ``chunk_ids(k)``: the ids of chunk ``k``.
    chunk_hashes : dict
        Chunk number -> content hashes of its structures, as read in this run.
    settings : str
        The settings digest.
    pooling : {"mean", "element"}
        The output's pooling (how rows map to ids).

    Yields
    ------
    table : pyarrow.Table
        The chunk's rows, without the part metadata.
    errors : list
        ``[index, id, reason]`` of its skipped structures.

    Raises
    ------
    RuntimeError
        A part is missing, holds other ids, content or settings, or rows that do not match its ids.
    """
    for k in range(n_chunks):
        meta = part_meta(parts, k)
        expected = chunk_ids(k)
        if not part_matches(meta, expected, chunk_hashes[k], settings):
            raise RuntimeError(
                f"{part_path(parts, k)} is missing or does not hold chunk {k} of this input; run again to redo it"
            )
        table = pq.read_table(part_path(parts, k))
        skipped = {e[1] for e in meta["errors"]}
        if _row_ids(table, pooling) != [sid for sid in expected if sid not in skipped]:
            raise RuntimeError(
                f"{part_path(parts, k)}: rows do not match the ids of chunk {k}; delete it and run again"
            )
        yield table.replace_schema_metadata(None), meta["errors"]
