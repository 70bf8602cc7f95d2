"""Streaming, resumable extraction of dynamic embeddings from large structure collections to a file.

Inputs are read lazily by :mod:`skdynemb.records` (:func:`~skdynemb.records.open_source`: a
folder of CIF/POSCAR files, or a JSON / JSON.GZ file holding a list of records or a pandas
table), so that only one chunk of structures is ever held in memory. Features are written per
chunk as parquet part files under ``OUTPUT.parts/`` (each one written atomically, with the ids
it covers; the store is :mod:`skdynemb.part_store`), then merged into ``OUTPUT`` (``.parquet``
or ``.npz``). An interrupted run (crash, Ctrl-C, kill) is
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
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from tqdm.auto import tqdm

from skdynemb._batches import batched
from skdynemb._files import atomic_write
from skdynemb._optional import needs_extra
from skdynemb._workers import exit_with_parent
from skdynemb.errors import InvalidStructureError
from skdynemb.part_store import (
    META_KEY,
    PARQUET_USERS,
    OutputBusyError,
    changed_records,
    discard_parts,
    errors_path,
    output_lock,
    part_matches,
    part_meta,
    part_path,
    parts_dir,
    prepare_parts,
    read_parts,
    schema,
    to_table,
)
from skdynemb.part_store import write_part as _write_part
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
from skdynemb.structures import string_kind
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

with needs_extra(PARQUET_USERS):
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "ExtractionSummary", "OutputBusyError", "errors_path", "extract_to_file", "parts_dir",
    # the record sources, defined in skdynemb.records, importable from here as before
    "ID_FIELDS", "STRUCTURE_FIELDS", "STRUCTURE_PREFIXES", "STRUCTURE_SUFFIXES",
    "RecordSource", "open_source", "pick_field", "record_hash",
]

OUTPUT_FORMATS = (".parquet", ".npz")
_MANIFEST_VERSION = 3  # 3: "stages" and "cell" (were "layers" and "standardize")


# ----------------------------------------------------------------------------- features per piece
def _featurize(transformer, records, table_schema: pa.Schema, skip_invalid: bool, parent: int):
    """Parse, check and featurize one piece of records: ``(table or None, errors, warnings)``.

    Errors are returned as ``(index, id, reason)`` rather than raised, so that they cross
    process boundaries intact: every structure that cannot be read, or that the backbone cannot
    featurize, by its global index. Nothing more is computed once one is found when
    ``skip_invalid`` is off. Warnings come back as data too, for the caller to re-issue.
    """
    exit_with_parent(parent)
    raws, ids, indices, errors = [], [], [], []
    with warnings.catch_warnings(record=True) as caught:
        for index, sample_id, raw in records:
            if isinstance(raw, str) and string_kind(raw.strip()) != "text":  # a record holds text, never a path
                errors.append((index, sample_id, "structure field holds one line, not CIF/POSCAR text"))
            else:
                raws.append(raw)
                ids.append(sample_id)
                indices.append(index)
        if errors and not skip_invalid:
            return None, errors, [w.message for w in caught]
        compounds, failed = transformer.extractor_.extract(
            raws, ids, indices, stop_on_error=not skip_invalid, memory=transformer.memory
        )
    errors = sorted(errors + failed, key=lambda e: e[0])
    if errors and not skip_invalid:
        return None, errors, [w.message for w in caught]
    table = to_table(transformer, [c for c in compounds if c is not None], table_schema)
    return table, errors, [w.message for w in caught]


@dataclass
class ExtractionSummary:
    """What :func:`extract_to_file` wrote.

    Attributes
    ----------
    output : Path
        The file written.
    n_structures : int
        Input structures.
    n_rows : int
        Rows written (per structure for ``"mean"``, per element for ``"element"``).
    errors : list of (int, str, str)
        ``(index, id, reason)`` of skipped structures.
    errors_file : Path or None
        The CSV listing them (None when there are none).
    resumed_chunks : int
        Chunks found finished on disk.
    """

    output: Path
    n_structures: int
    n_rows: int
    errors: list[tuple[int, str, str]]
    errors_file: Path | None
    resumed_chunks: int


# ----------------------------------------------------------------------------- driver
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
        "cell": transformer.extractor_.cell,
        "stages": list(transformer.stages_),
        "pooling": transformer.pooling,
        "compound_features": transformer.compound_features,
        "feature_names": [str(n) for n in transformer.get_feature_names_out()],
    }


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
        Default: one with its default parameters (backbone
        :data:`~skdynemb.extraction.DEFAULT_BACKBONE`, ``"alignn-ff"``; pass
        ``DynamicEmbeddingTransformer("cgcnn-mp-eform")`` for the ~25x faster shipped backbone).
        Backbone, stage, pooling, batch size, device and ``n_jobs``. Fitted here if needed (a
        clone; yours is left as is). With ``n_jobs`` > 1 each batch is parsed and featurized
        by a joblib worker (any backend: loky, or dask under ``joblib.parallel_config("dask")``).
    chunk_size : int, default=1000
        Structures per part file: the unit of memory use and of resumption.
    id_field, structure_field : str, optional
        The record fields holding the id and the structure, for record files; None: picked from
        the known names (:data:`~skdynemb.records.ID_FIELDS`, :data:`~skdynemb.records.STRUCTURE_FIELDS`).
    skip_invalid : bool
        False: the first structure that cannot be read or featurized raises
        :class:`~skdynemb.errors.InvalidStructureError` naming it (finished chunks are kept).
        True: such structures are left out and listed in ``OUTPUT.errors.csv``.
    overwrite : bool
        Replace an existing ``output`` and discard unfinished parts; otherwise an existing
        ``output`` is an error and unfinished parts of the same extraction are resumed.
    progress : bool, default=True
        tqdm progress bar over the structures.

    Returns
    -------
    summary : ExtractionSummary
        The output path, the structure and row counts, the skipped structures and the chunks
        found finished on disk.

    Notes
    -----
    ``OUTPUT.lock`` is held while this runs: a second extraction into the same output fails at
    once (:class:`~skdynemb.part_store.OutputBusyError`). ``OUTPUT.parts`` must be a real folder (a symbolic
    link is refused).
    In ``OUTPUT.errors.csv``, an id or reason that starts with ``=``, ``+``, ``-``, ``@``, a tab or
    a carriage return is written with a leading ``'``, so that no spreadsheet runs it as a formula.
    """
    output = Path(output)
    if output.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"output must end in one of {OUTPUT_FORMATS}, got {str(output)!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    with output_lock(output):  # one extraction per output: a second one is an error, not a race
        return _extract_locked(
            source, output, transformer, chunk_size=chunk_size, id_field=id_field, structure_field=structure_field,
            skip_invalid=skip_invalid, overwrite=overwrite, progress=progress,
        )


def _extract_locked(
    source, output: Path, transformer, *, chunk_size, id_field, structure_field, skip_invalid, overwrite, progress
) -> ExtractionSummary:
    """:func:`extract_to_file` once its output is locked."""
    parts = parts_dir(output)
    if overwrite:
        discard_parts(parts)
        output.unlink(missing_ok=True)
        errors_path(output).unlink(missing_ok=True)
    elif output.exists():
        raise FileExistsError(f"{output} exists; overwrite it (--overwrite) or choose another output")
    transformer = DynamicEmbeddingTransformer() if transformer is None else transformer
    fitted = transformer if hasattr(transformer, "backbone_") else clone(transformer).fit()
    if not isinstance(source, RecordSource):
        source = open_source(source, id_field, structure_field)
    settings = _settings(fitted, source, chunk_size)
    prepare_parts(parts, settings)

    n_chunks = -(-len(source) // chunk_size)
    chunk_ids = lambda k: source.ids[k * chunk_size : (k + 1) * chunk_size]  # noqa: E731
    settings_digest = digest(settings)
    done = {}  # chunk -> metadata of its finished part, checked against the input as it is read
    for k in range(n_chunks):
        meta = part_meta(parts, k)
        if meta is not None and meta["ids"] == chunk_ids(k):
            done[k] = meta
        elif part_path(parts, k).exists():
            warnings.warn(f"{part_path(parts, k)} is unreadable or stale; computing chunk {k} again", stacklevel=2)

    part_schema = schema(fitted.get_feature_names_out(), fitted.pooling)
    worker = copy.copy(fitted).set_params(progress=False, n_jobs=None)
    n_jobs, batch = fitted.n_jobs, fitted.batch_size_
    parent, chunk_hashes, resumed = os.getpid(), {}, 0
    with tqdm(total=len(source), unit="structure", desc="extract", disable=not progress) as bar:
        for k, chunk in enumerate(batched(source.records(), chunk_size)):
            ids = [r[1] for r in chunk]
            chunk_hashes[k] = hashes = [record_hash(r[2]) for r in chunk]
            if k in done:
                if part_matches(done[k], ids, hashes, settings_digest):
                    resumed += 1
                    bar.update(len(chunk))
                    continue
                reason = (
                    "was written with other settings" if done[k].get("settings") != settings_digest
                    else changed_records(done[k], ids, hashes)
                )
                warnings.warn(
                    f"{part_path(parts, k)}: chunk {k} of {source.path} {reason}; computing it again "
                    "(its old rows are not used)",
                    stacklevel=2,
                )
            pieces = list(batched(chunk, batch))
            if n_jobs in (None, 1):
                results = (_featurize(worker, piece, part_schema, skip_invalid, parent) for piece in pieces)
            else:  # a new Parallel per chunk: one whose generator was not run to its end refuses new tasks
                results = Parallel(n_jobs=n_jobs, return_as="generator")(
                    delayed(_featurize)(worker, piece, part_schema, skip_invalid, parent) for piece in pieces
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


# ----------------------------------------------------------------------------- merging
#: first characters that make a spreadsheet read a CSV cell as a formula (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value) -> str:
    """``value`` as CSV cell text that no spreadsheet runs as a formula (a leading ``'`` where needed)."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


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


def _merge(
    parts, output, n_chunks, chunk_ids, chunk_hashes, fitted, settings, skip_invalid, resumed
) -> ExtractionSummary:
    pooling, names = fitted.pooling, settings["feature_names"]
    output_schema = schema(names, pooling)
    keys = ("backbone", "fingerprint", "backbone_identity", "stages", "pooling", "compound_features", "cell")
    provenance = {k: settings[k] for k in keys}
    provenance["weights"] = None if fitted.weights is None else str(fitted.weights)
    every_record = "".join(h for k in range(n_chunks) for h in chunk_hashes[k])
    provenance["input_sha256"] = hashlib.sha256(every_record.encode()).hexdigest()
    settings_digest = digest(settings)
    output_schema = output_schema.with_metadata({META_KEY: json.dumps(provenance)})
    errors, n_rows = [], 0

    def write_parquet(tmp):
        nonlocal n_rows
        with pq.ParquetWriter(tmp, output_schema) as writer:
            for table, chunk_errors in read_parts(parts, n_chunks, chunk_ids, chunk_hashes, settings_digest, pooling):
                writer.write_table(table.cast(output_schema))
                errors.extend(chunk_errors)
                n_rows += len(table)

    def write_npz(tmp):
        nonlocal n_rows
        tables = []
        for table, chunk_errors in read_parts(parts, n_chunks, chunk_ids, chunk_hashes, settings_digest, pooling):
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
        csv.writer(buffer).writerows(
            [("index", "id", "reason"), *((i, _csv_text(sid), _csv_text(why)) for i, sid, why in errors)]
        )
        atomic_write(errors_file, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    discard_parts(parts)
    n_structures = settings["n_structures"]
    return ExtractionSummary(output, n_structures, n_rows, errors, errors_file if errors else None, resumed)
