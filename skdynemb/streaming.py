"""Streaming, resumable extraction of dynamic embeddings from large structure collections to a file.

Inputs are read lazily by :mod:`skdynemb.records` (:func:`~skdynemb.records.open_source`: a
folder of CIF/POSCAR files, or a JSON / JSON.GZ file holding a list of records or a pandas
table), so that only one chunk of structures is ever held in memory. Features are written per
chunk as parquet part files under ``OUTPUT.parts/`` (each one written atomically, with the ids
it covers), then merged into ``OUTPUT`` (``.parquet`` or ``.npz``). An interrupted run (crash, Ctrl-C, kill) is
resumed by running the same extraction again: finished chunks are checked and skipped, and the
result is identical to an uninterrupted run, one row (set) per input structure, in input order.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
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
from skdynemb.records import (
    ID_FIELDS,
    STRUCTURE_FIELDS,
    STRUCTURE_PREFIXES,
    STRUCTURE_SUFFIXES,
    RecordSource,
    open_source,
    pick_field,
    record_hash,
)
from skdynemb.structures import string_kind, to_crystal
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

__all__ = [
    "ExtractionSummary", "errors_path", "extract_to_file", "parts_dir",
    # the record sources, defined in skdynemb.records, importable from here as before
    "ID_FIELDS", "STRUCTURE_FIELDS", "STRUCTURE_PREFIXES", "STRUCTURE_SUFFIXES",
    "RecordSource", "open_source", "pick_field", "record_hash",
]

OUTPUT_FORMATS = (".parquet", ".npz")
_MANIFEST_VERSION = 2
_META_KEY = b"skdynemb"


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
                if isinstance(raw, str) and string_kind(raw.strip()) != "text":
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
    source : path or skdynemb.records.RecordSource
        See :func:`~skdynemb.records.open_source` (``id_field`` / ``structure_field`` are passed to it).
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
