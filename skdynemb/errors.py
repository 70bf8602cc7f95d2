"""Errors (and warnings) that name the offending sample."""

from __future__ import annotations

import re

_SAMPLE_PREFIX = re.compile(r"^sample \d+( \(id=.*?\))?: ")


class InvalidSampleError(ValueError):
    """A sample that cannot be used; the message starts with its index (and id).

    Parameters
    ----------
    index : int or None
        Global index of the sample (None when not known).
    sample_id : object
        Its id, or None.
    problem : str
        What is wrong, without the sample prefix.
    """

    def __init__(self, index: int | None, sample_id, problem: str):
        self.index, self.sample_id, self.problem = index, sample_id, problem
        super().__init__(f"{_where(index, sample_id)}: {problem}")

    def __reduce__(self):  # pickles across joblib / dask workers with its fields
        return type(self), (self.index, self.sample_id, self.problem)


class InvalidStructureError(InvalidSampleError):
    """A structure that cannot be used (empty, disordered, overlapping atoms, unreadable...)."""


class InvalidCompositionError(InvalidSampleError):
    """A composition that cannot be used (unknown element, unparsable formula, bad amounts...)."""


class StructureWarning(UserWarning):
    """A structure that is used, but looks suspicious (e.g. two atoms closer than a bond).

    Parameters
    ----------
    index : int or None
        Global index of the sample (None when not known).
    sample_id : object
        Its id, or None.
    problem : str
        What is wrong, without the sample prefix.
    """

    def __init__(self, index: int | None, sample_id, problem: str):
        self.index, self.sample_id, self.problem = index, sample_id, problem
        super().__init__(f"{_where(index, sample_id)}: {problem}")

    def __reduce__(self):
        return type(self), (self.index, self.sample_id, self.problem)


class BackboneBatchError(RuntimeError):
    """A backbone failed on a batch for a reason no single structure explains (memory, device, bug)."""


def _where(index, sample_id) -> str:
    where = f"sample {index}" if index is not None else "sample"
    if sample_id is not None:
        where += f" (id={sample_id!r})"
    return where


def problem_of(exc: BaseException) -> str:
    """What ``exc`` says is wrong with a sample, without any leading ``"sample N (id=...): "``.

    Parameters
    ----------
    exc : BaseException
        An error, an :class:`InvalidSampleError` or any other.

    Returns
    -------
    problem : str
        Its message without the sample prefix.
    """
    if isinstance(exc, InvalidSampleError):
        return exc.problem
    return _SAMPLE_PREFIX.sub("", str(exc))
