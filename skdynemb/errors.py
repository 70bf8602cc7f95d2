"""Errors that name the offending sample."""

from __future__ import annotations


class InvalidSampleError(ValueError):
    """A sample that cannot be used; the message starts with its index (and id)."""

    def __init__(self, index: int | None, sample_id, problem: str):
        self.index, self.sample_id, self.problem = index, sample_id, problem
        where = f"sample {index}" if index is not None else "sample"
        if sample_id is not None:
            where += f" (id={sample_id!r})"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # pickles across joblib / dask workers with its fields
        return type(self), (self.index, self.sample_id, self.problem)


class InvalidStructureError(InvalidSampleError):
    """A structure that cannot be used (empty, disordered, overlapping atoms, unreadable...)."""


class InvalidCompositionError(InvalidSampleError):
    """A composition that cannot be used (unknown element, unparsable formula, bad amounts...)."""
