"""Where the project's shared, read-only data lives (tests, benchmarks, examples)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """``$SKDYNEMB_SHARED`` or ``../shared`` beside the repository, if it exists."""
    env = os.environ.get("SKDYNEMB_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared")
    for path in candidates:
        if (path / "data").is_dir():
            return path
    return None


def shared_data(*parts: str) -> Path | None:
    """Path to a file under ``shared/data`` if present, else None."""
    root = shared_dir()
    if root is None:
        return None
    path = root.joinpath("data", *parts)
    return path if path.exists() else None
