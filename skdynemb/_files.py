"""Writing files safely: atomically, with the user's umask, never leaving temporary files behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, so no other thread sees it change)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Create ``path`` by ``write(tmp)`` into a temporary file of the same folder, then a rename.

    Readers see either the old file or the complete new one, never half a file; if ``write``
    (or anything up to the rename) fails, or the process is interrupted, the temporary file is
    removed. The new file gets mode ``0o666 & ~umask``, like a file created with ``open``
    (``mkstemp`` alone would make it 0600). Temporary files are named ``.<name>.<random>.tmp``;
    only a hard kill can leave one behind (see :func:`remove_stale_temporaries`).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when a process was killed."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
