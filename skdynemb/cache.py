"""On-disk cache of per-structure pooled stage features.

Keys combine the structure's content hash, the backbone's weight fingerprint and the pooled
format version, so a cache can never serve rows from other weights or another structure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import joblib

from skdynemb.pooling import PooledStages

_FORMAT = "pooled-v1"


def cache_location(memory) -> Path | None:
    """Folder for ``memory``: None, a path, or a ``joblib.Memory`` (its ``location``)."""
    if memory is None:
        return None
    if isinstance(memory, joblib.Memory):
        return None if memory.location is None else Path(memory.location)
    if isinstance(memory, (str, os.PathLike)):
        return Path(memory)
    raise TypeError(f"memory must be None, a path or a joblib.Memory, got {type(memory).__name__}")


class StageCache:
    """Read/write :class:`PooledStages` under ``root/skdynemb/<backbone>/``."""

    def __init__(self, root: Path, backbone_name: str, fingerprint: str):
        self.folder = Path(root) / "skdynemb" / backbone_name
        self.fingerprint = fingerprint

    def key(self, structure_hash: str) -> str:
        return hashlib.sha256(f"{_FORMAT}:{self.fingerprint}:{structure_hash}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.joblib"

    def get(self, structure_hash: str) -> PooledStages | None:
        path = self._path(self.key(structure_hash))
        if not path.exists():
            return None
        return joblib.load(path)

    def put(self, structure_hash: str, pooled: PooledStages) -> None:
        path = self._path(self.key(structure_hash))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        joblib.dump(pooled, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written entry
