"""Where the data files live (datasets, tests, benchmarks, examples).

The data folder holds ``mp/``, ``jarvis/`` and ``matbench/`` (the layout of the project's
``shared/data``). It is found, in this order, at:

1. ``$SKDYNEMB_DATA`` (the data folder itself);
2. ``$SKDYNEMB_SHARED/data``;
3. ``../shared/data`` beside a clone of the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
#: environment variable naming the data folder (the one holding mp/, jarvis/, matbench/)
DATA_ENV = "SKDYNEMB_DATA"


def shared_dir() -> Path | None:
    """``$SKDYNEMB_SHARED`` or ``../shared`` beside the repository, if it exists."""
    env = os.environ.get("SKDYNEMB_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared")
    for path in candidates:
        if (path / "data").is_dir():
            return path
    return None


def data_dir() -> Path | None:
    """The data folder: ``$SKDYNEMB_DATA``, else ``shared_dir() / "data"``; None if there is none.

    A ``$SKDYNEMB_DATA`` that is set is used as given, existing or not (a typo there should give
    an error naming it, not silently another folder).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    root = shared_dir()
    return None if root is None else root / "data"


def shared_data(*parts: str) -> Path | None:
    """Path to a file under the data folder (:func:`data_dir`) if present, else None."""
    root = data_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def where_data_is_looked_for() -> str:
    """The data folder in words, for error messages."""
    env = os.environ.get(DATA_ENV)
    if env:
        return f"${DATA_ENV}={env}"
    root = shared_dir()
    if root is not None:
        return str(root / "data")
    return f"${DATA_ENV} is not set and there is no ../shared/data beside the repository"
