"""Cutting structures into forward batches: the one place where a batch is decided.

Everything that runs a backbone over many structures (the extraction, streaming, a backbone's
``predict``) cuts its input here and hands each batch to one forward pass as it is; a backbone
never re-chunks what it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from numbers import Integral
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], batch_size: int) -> Iterator[list[T]]:
    """Consecutive batches of exactly ``batch_size`` items, in order; only the last may be shorter.

    ``items`` is read lazily (an iterator of records is never held whole).

    Parameters
    ----------
    items : iterable
        Structures, records or indices.
    batch_size : int
        Items per batch, at least 1.

    Yields
    ------
    batch : list
        The next ``batch_size`` items (fewer only at the end; nothing for empty ``items``).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    iterator = iter(items)
    while batch := list(islice(iterator, int(batch_size))):
        yield batch
