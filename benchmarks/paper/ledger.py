"""The one result store of the paper benchmarks: a committed ledger of fits, plus per-folder manifests.

Ledger (``benchmarks/results/ledger/``): JSON Lines, one file per property
(``<source>_<target>.jsonl``), one record per line, sorted by key, each line ``json.dumps`` with
sorted keys, so a run adds lines and git diffs stay clean. A file is rewritten atomically after
every fit, so a killed run loses at most the fits that were running. Two kinds of record::

    {"kind": "fit", "key": ..., "identity": {...}, "result": {...}, "provenance": {...}}
    {"kind": "property", "key": ..., "identity": {...}, "result": {...}, "provenance": {...}}

``key`` is a digest of ``identity`` (everything the result depends on: property, subset, model,
inputs, seed, number of samples, digests of the split indices and of y, the model's settings,
backbone and the weights' content hash). A fit whose identity is in the ledger is read, never
retrained; a different identity has a different key, so it is never served. A property record
holds what tables need besides fits (sizes, split name, mean-baseline MAE, zero share, unit,
number of samples left out). No target values are stored.

Manifest (``<out>/manifest.json``): per table written to that folder, its builder, the builder's
arguments (ledger keys and choices) and the table header (command, settings, machine, git
revision); ``python -m benchmarks.paper.run rebuild`` re-renders every table from the two.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from skdynemb._files import atomic_write

from .data import PropData
from .settings import Settings, git_rev, machine

MANIFEST = "manifest.json"
#: lock file serialising writers of one ledger folder (git-ignored)
LOCK = ".lock"


def canonical(obj):
    """``obj`` as JSON gives it back (tuples become lists, key order kept), for comparing and storing."""
    return json.loads(json.dumps(obj))


def digest(obj) -> str:
    """24 hex digits of SHA-256 over the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:24]


def index_digest(split) -> str:
    """Digest of (train, val, test) index arrays, in order."""
    return hashlib.sha256(b"".join(np.asarray(s, np.int64).tobytes() + b"|" for s in split)).hexdigest()[:16]


def array_digest(y) -> str:
    """Digest of the float64 bytes of ``y``."""
    return hashlib.sha256(np.ascontiguousarray(y, dtype=np.float64).tobytes()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    return machine()


def provenance(settings: Settings) -> dict:
    """Git revision and machine line, UTC date, device."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"git": git_rev(), "machine": _machine(), "date": date, "device": settings.device}


def weights_hash(settings: Settings) -> str | None:
    """Content hash of the backbone's weights when they are given by path (None for shipped weights)."""
    if settings.weights is None:
        return None
    from .data import backbone_for

    return backbone_for(settings).fingerprint()


def property_identity(data: PropData) -> dict:
    """Identity of a property's sample set and split."""
    return {"property": data.key, "subset": data.subset, "n": int(len(data.y)), "split": index_digest(data.split),
            "y": array_digest(data.y), "split_name": data.split_name}


def fit_identity(data: PropData, model: str, inputs: str, seed: int, params: dict, settings: Settings) -> dict:
    """Identity of one fit: the property's identity, the model, its inputs, seed and settings, the backbone."""
    ident = property_identity(data)
    del ident["split_name"]
    return {**ident, "model": model, "inputs": inputs, "seed": int(seed), "params": params,
            "backbone": settings.backbone, "weights": weights_hash(settings)}


class Ledger:
    """The records of ``folder`` (``*.jsonl``), read once; :meth:`put` appends and rewrites one file."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.records: dict[str, dict] = {}
        for path in sorted(self.folder.glob("*.jsonl")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{n}: not a JSON record ({exc})") from None
                    self.records[record["key"]] = record

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> dict:
        try:
            return self.records[key]
        except KeyError:
            raise KeyError(f"no record {key} in the ledger {self.folder}") from None

    def get(self, identity: dict) -> dict | None:
        """The record of ``identity``, or None. A record under its key with another identity is an error."""
        key = digest(identity)
        record = self.records.get(key)
        if record is not None and record["identity"] != canonical(identity):
            raise ValueError(f"ledger record {key} holds identity {record['identity']}, not {canonical(identity)}")
        return record

    def put(self, kind: str, identity: dict, result: dict, settings: Settings) -> dict:
        """Store a record and rewrite its property's file atomically; returns the record."""
        record = canonical({"kind": kind, "key": digest(identity), "identity": identity, "result": result,
                            "provenance": provenance(settings)})
        self.records[record["key"]] = record
        self._write(identity["property"])
        return record

    def add_property(self, data: PropData, settings: Settings) -> str:
        """Key of ``data``'s property record (stored if new)."""
        identity = property_identity(data)
        if self.get(identity) is None:
            result = {"unit": data.spec.unit, "sizes": data.sizes(), "n_dropped": data.n_dropped,
                      "mean_baseline_mae": data.mean_baseline(), "zero_share": data.zero_share, "flag": data.flag}
            self.put("property", identity, result, settings)
        return digest(identity)

    def _write(self, prop: str) -> None:
        """Rewrite ``prop``'s file under a lock, merged with what other runs added to it meanwhile."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{prop.replace(':', '_')}.jsonl"
        with open(self.folder / LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                for line in path.read_text().splitlines():
                    record = json.loads(line)
                    self.records.setdefault(record["key"], record)
            mine = sorted((r for r in self.records.values() if r["identity"]["property"] == prop),
                          key=lambda r: r["key"])
            text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in mine)
            atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_manifest(folder) -> dict:
    """``<folder>/manifest.json`` (empty when absent): table name -> {builder, args, header}."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(folder, name: str, entry: dict) -> None:
    """Set table ``name``'s entry of ``<folder>/manifest.json`` (rewritten atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = read_manifest(folder)
    tables[name] = canonical(entry)
    # key order inside an entry is kept (it is the order of the table header's lines)
    text = json.dumps(dict(sorted(tables.items())), indent=1, ensure_ascii=False) + "\n"
    atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(text))
