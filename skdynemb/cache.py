"""On-disk cache of per-structure pooled stage features (the transformer's ``memory=``).

Layout: ``<memory>/skdynemb/<backbone name>/<key[:2]>/<key>.npz``, one entry per structure.

- The key hashes the structure's content (:meth:`Crystal.content_hash`, in the cell the
  extractor maps it onto, ``cell=``) and the backbone's whole identity (:func:`skdynemb.provenance.backbone_identity`:
  weights, graph rule and its settings, e.g. a checkpoint's ``config.json`` cutoff, the stage
  layout, and the versions of the code), so a cache never serves rows of another computation.
- Each entry is a plain ``.npz`` (read with ``allow_pickle=False``: nothing in the folder can
  run code) that records what it is for: its key, the structure hash, the elements, the
  shapes of its arrays and a SHA-256 of their contents. All of it is checked on read; an entry
  that is unreadable, truncated, written for something else, edited (its numbers no longer
  match the checksum) or holds non-finite values is recomputed, with a
  :class:`CacheEntryWarning` naming the file.
- Entries are written atomically (:func:`skdynemb._files.atomic_write`) with the user's umask.
  A folder that cannot be written (read-only, disk full) gives one :class:`CacheWriteWarning`
  and the run goes on without storing entries.

Clear a cache with :func:`clear_cache` (or delete ``<memory>/skdynemb``); entries of older
formats (``.joblib`` files of skdynemb <= 0.1) are never read and can be deleted the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import joblib
import numpy as np

from skdynemb._files import atomic_write
from skdynemb.pooling import PooledStages, element_groups
from skdynemb.provenance import backbone_identity, digest

_FORMAT = "pooled-v3"  # v3: a SHA-256 of the payload in the metadata
_SUFFIX = ".npz"


class CacheEntryWarning(UserWarning):
    """A cache entry could not be used (unreadable, for other input, edited, invalid values) and is recomputed."""


class CacheWriteWarning(UserWarning):
    """The cache folder cannot be written (read-only, disk full): the run goes on without storing entries."""


def _payload_digest(arrays: dict) -> str:
    """SHA-256 over every array of an entry but its metadata: name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "meta":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_location(memory) -> Path | None:
    """Folder for ``memory``: None, a path, or a ``joblib.Memory`` (its ``location``).

    An empty path (``""``, which would put the cache in the working directory) is a ValueError.

    Parameters
    ----------
    memory : None, str, os.PathLike or joblib.Memory
        The ``memory`` option of an estimator.

    Returns
    -------
    folder : Path or None
        The cache folder; None for no cache.

    Raises
    ------
    TypeError
        ``memory`` is of another type.
    ValueError
        ``memory`` is an empty path.
    """
    location = memory.location if isinstance(memory, joblib.Memory) else memory
    if location is None:
        return None
    if not isinstance(location, (str, os.PathLike)):
        raise TypeError(f"memory must be None, a path or a joblib.Memory, got {type(memory).__name__}")
    if not str(os.fspath(location)).strip():
        raise ValueError(
            f"memory={memory!r} names no folder (an empty path would put the cache in the working "
            "directory); pass a folder path, or memory=None for no cache"
        )
    return Path(location)


def clear_cache(memory) -> None:
    """Delete every skdynemb entry under ``memory`` (a path or ``joblib.Memory``; other files stay).

    Parameters
    ----------
    memory : None, str, os.PathLike or joblib.Memory
        The cache, as given to an estimator's ``memory``; None does nothing.
    """
    root = cache_location(memory)
    if root is not None:
        shutil.rmtree(root / "skdynemb", ignore_errors=True)


class _BadEntry(Exception):
    """Why an entry cannot be served (the message)."""


class StageCache:
    """Read/write one backbone's :class:`PooledStages` under ``root/skdynemb/<backbone name>/``.

    Parameters
    ----------
    root : Path
        The cache folder (see :func:`cache_location`).
    backbone : Backbone
        The backbone whose features are cached (its name, stage and bond / angle widths).
    identity : dict, optional
        The backbone's :func:`~skdynemb.provenance.backbone_identity`; computed from ``backbone``
        when None.
    """

    def __init__(self, root: Path, backbone, identity: dict | None = None):
        self.folder = Path(root) / "skdynemb" / backbone.name
        self.identity = backbone_identity(backbone) if identity is None else identity
        self._identity_digest = digest({"format": _FORMAT, "identity": self.identity})
        self.stage_dims = list(backbone.stage_dims)
        self.bond_dims = None if backbone.bond_dims is None else list(backbone.bond_dims)
        self.angle_dims = None if backbone.angle_dims is None else list(backbone.angle_dims)
        self._writable = True  # False after a failed write: the rest of the run is uncached

    def key(self, structure_hash: str) -> str:
        """Cache key of a structure: a digest of the backbone identity and the structure's content hash.

        Parameters
        ----------
        structure_hash : str
            Content hash of the structure.

        Returns
        -------
        key : str
            Hex digest naming the structure's entry for this backbone.
        """
        return digest({"identity": self._identity_digest, "structure": structure_hash})

    def path(self, structure_hash: str) -> Path:
        """Where the entry of a structure (by content hash) lives.

        Parameters
        ----------
        structure_hash : str
            The structure's content hash.

        Returns
        -------
        path : Path
            ``folder/<key[:2]>/<key>`` plus the entry suffix (the file may not exist).
        """
        key = self.key(structure_hash)
        return self.folder / key[:2] / f"{key}{_SUFFIX}"

    def clear(self) -> None:
        """Delete this backbone's entries."""
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ reading
    def get(self, structure_hash: str, numbers: np.ndarray) -> PooledStages | None:
        """The entry of the structure with this content hash and these atomic numbers, or None.

        None also when the entry exists but cannot be used; a :class:`CacheEntryWarning` then
        names the file and the reason, and the caller recomputes (and overwrites) it.

        Parameters
        ----------
        structure_hash : str
            The structure's content hash.
        numbers : ndarray of shape (n_atoms,), int
            Its atomic numbers, checked against the entry.

        Returns
        -------
        pooled : PooledStages or None
            The cached element-pooled stages, or None (no usable entry).
        """
        path = self.path(structure_hash)
        try:
            if not path.is_file():
                return None
            return self._read(path, structure_hash, numbers)
        except _BadEntry as exc:
            reason = str(exc)
        except Exception as exc:  # any failure to read the file: truncated zip, pickle, bad header...
            reason = f"unreadable ({type(exc).__name__}: {exc})"
        warnings.warn(f"cache entry {path} is {reason}; computing it again", CacheEntryWarning, stacklevel=3)
        return None

    def _read(self, path: Path, structure_hash: str, numbers: np.ndarray) -> PooledStages:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if "meta" not in arrays:
            raise _BadEntry("not a skdynemb cache entry (no metadata)")
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != _FORMAT or meta.get("key") != self.key(structure_hash):
            raise _BadEntry(f"an entry for other input (key {str(meta.get('key'))[:12]}...)")
        if meta.get("structure") != structure_hash:
            raise _BadEntry("an entry for another structure")
        if meta.get("checksum") != _payload_digest(arrays):
            raise _BadEntry("edited or corrupted (its numbers do not match the checksum written with them)")
        z, _, counts = element_groups(numbers)
        expected = _elements(z)
        if tuple(meta.get("elements", ())) != expected:
            raise _BadEntry(f"for elements {meta.get('elements')}, not {list(expected)}")
        fractions = arrays.get("fractions")
        if fractions is None or not np.array_equal(fractions, counts / counts.sum()):
            raise _BadEntry("holding other atomic fractions")
        stages = self._arrays(arrays, "stage", [(len(expected), d) for d in self.stage_dims])
        bond = self._optional(arrays, meta, "bond", self.bond_dims)
        angle = self._optional(arrays, meta, "angle", self.angle_dims)
        return PooledStages(expected, fractions, stages, bond, angle)

    @staticmethod
    def _arrays(arrays: dict, kind: str, shapes: list[tuple]) -> list[np.ndarray]:
        out = []
        for k, shape in enumerate(shapes):
            a = arrays.get(f"{kind}_{k}")
            if a is None or a.shape != shape or a.dtype != np.float32:
                got = None if a is None else f"{a.dtype}{list(a.shape)}"
                raise _BadEntry(f"holding {kind} {k} as {got}, expected float32{list(shape)}")
            if not np.isfinite(a).all():
                raise _BadEntry(f"holding non-finite values in {kind} {k}")
            out.append(a)
        if f"{kind}_{len(shapes)}" in arrays:
            raise _BadEntry(f"holding more {kind} arrays than the backbone has")
        return out

    def _optional(self, arrays: dict, meta: dict, kind: str, dims) -> list[np.ndarray] | None:
        if not meta.get(kind):
            if f"{kind}_0" in arrays:
                raise _BadEntry(f"holding {kind} arrays its metadata does not declare")
            return None
        if dims is None:
            raise _BadEntry(f"holding {kind} features this backbone does not have")
        return self._arrays(arrays, kind, [(d,) for d in dims])

    # ------------------------------------------------------------------ writing
    def put(self, structure_hash: str, pooled: PooledStages) -> None:
        """Store one structure's pooled stages (atomically; replaces an unusable entry).

        Parameters
        ----------
        structure_hash : str
            The structure's content hash.
        pooled : PooledStages
            Its element-pooled stages; not stored when a stage has no values.
        """
        parts = [*pooled.stages, *(pooled.bond or ()), *(pooled.angle or ())]
        if any(a is None for a in parts):  # a stage without values is not a result to keep
            return
        if not self._writable:
            return
        path = self.path(structure_hash)
        meta = {
            "format": _FORMAT,
            "key": self.key(structure_hash),
            "structure": structure_hash,
            "elements": list(pooled.elements),
            "bond": pooled.bond is not None,
            "angle": pooled.angle is not None,
        }
        arrays = {"fractions": np.asarray(pooled.fractions, dtype=np.float64)}
        for kind, values in (("stage", pooled.stages), ("bond", pooled.bond), ("angle", pooled.angle)):
            for k, a in enumerate(values or ()):
                arrays[f"{kind}_{k}"] = np.asarray(a, dtype=np.float32)
        meta["shapes"] = {name: list(a.shape) for name, a in arrays.items()}
        meta["checksum"] = _payload_digest(arrays)
        arrays["meta"] = np.array(json.dumps(meta))

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, write)
        except OSError as exc:  # read-only folder, disk full, quota: the rows are fine, only not kept
            self._writable = False
            warnings.warn(
                f"cannot write the cache under {self.folder} ({type(exc).__name__}: {exc}); "
                "going on without storing entries (this warning is given once)",
                CacheWriteWarning, stacklevel=3,
            )


def _elements(z: np.ndarray) -> tuple[str, ...]:
    from pymatgen.core.periodic_table import Element

    return tuple(Element.from_Z(int(k)).symbol for k in z)
