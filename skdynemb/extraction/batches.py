"""Batched forward passes: checked crystals -> per-structure :class:`PooledStages`, with cache and workers.

The part of :class:`~skdynemb.extraction.Extractor` that runs the backbone; most code calls the
Extractor, which parses samples and turns these pooled stages into rows.

Failures are attributed to structures: a batch that fails in the backbone (graph building or
forward pass) is run again one structure at a time, so that each structure that fails on its
own is reported as :class:`~skdynemb.errors.InvalidStructureError` with its global index and
id (and can be skipped), while the rest of the batch is kept. Failures that no structure
explains (out of memory, device errors, programming errors) raise
:class:`~skdynemb.errors.BackboneBatchError` for the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from skdynemb._batches import batched
from skdynemb._workers import exit_with_parent
from skdynemb.backbones._geometry import bound_of, check_geometry
from skdynemb.backbones.base import Backbone
from skdynemb.cache import StageCache
from skdynemb.errors import BackboneBatchError, InvalidSampleError, InvalidStructureError, problem_of
from skdynemb.pooling import PooledStages, pool_by_element
from skdynemb.structures import Crystal

#: ``(global index, id, reason)`` of a structure that could not be featurized.
SampleError = tuple[int, "str | None", str]

_OUT_OF_MEMORY = (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))
#: Exceptions that, raised for a batch of one structure, are that structure's fault.
_SAMPLE_FAULTS = (ValueError, RuntimeError, IndexError, KeyError, ArithmeticError, AssertionError)


def is_sample_fault(exc: BaseException) -> bool:
    """Whether ``exc``, raised for one structure alone, says that structure cannot be featurized.

    Parameters
    ----------
    exc : BaseException
        The exception raised for the structure.

    Returns
    -------
    fault : bool
        True for an invalid sample; False for failures that are not the sample's fault
        (out of memory, CUDA errors) or unknown exception types.
    """
    if isinstance(exc, InvalidSampleError):
        return True
    if isinstance(exc, _OUT_OF_MEMORY) or (isinstance(exc, RuntimeError) and "CUDA" in str(exc)):
        return False
    return isinstance(exc, _SAMPLE_FAULTS)


def check_elements(backbone: Backbone, crystal: Crystal, index: int) -> None:
    """``backbone.check_elements`` raising :class:`InvalidStructureError` naming the sample.

    Parameters
    ----------
    backbone : Backbone
        The backbone the crystal is for.
    crystal : Crystal
        The structure.
    index : int
        Its global sample index, for the message.

    Raises
    ------
    InvalidStructureError
        The crystal has an element the backbone does not cover.
    """
    try:
        backbone.check_elements(crystal, index)
    except ValueError as exc:
        raise InvalidStructureError(index, crystal.id, problem_of(exc)) from exc


def check_sample(backbone: Backbone, crystal: Crystal, index: int) -> None:
    """Every check of one crystal against ``backbone`` before any forward: its elements, then the
    geometry guard (:func:`skdynemb.backbones._geometry.check_geometry`: no site with more
    neighbours within the backbone's cutoff than a real crystal could have).

    Parameters
    ----------
    backbone : Backbone
        The backbone the crystal is for.
    crystal : Crystal
        The structure.
    index : int
        Its global sample index, for the message.

    Raises
    ------
    InvalidStructureError
        An element is not covered, or the geometry guard fails.
    """
    check_elements(backbone, crystal, index)
    check_geometry(crystal, bound_of(backbone), index, backbone.name)


def _pool(backbone: Backbone, crystal: Crystal, output, index: int) -> PooledStages:
    pooled = pool_by_element(crystal.numbers, output)
    arrays = [*pooled.stages, *(pooled.bond or ()), *(pooled.angle or ())]
    if not all(a is None or np.isfinite(a).all() for a in arrays):
        raise InvalidStructureError(
            index, crystal.id, f"{backbone.name} returned non-finite features (NaN or infinity) for this structure"
        )
    return pooled


def _forward(backbone: Backbone, crystals: Sequence[Crystal], indices: Sequence[int]) -> list[PooledStages]:
    outputs = backbone.forward_stages(crystals)
    return [_pool(backbone, c, out, i) for c, out, i in zip(crystals, outputs, indices)]


def _run_batch(
    backbone: Backbone, crystals: Sequence[Crystal], indices: Sequence[int], threads: int | None, parent: int
) -> list[PooledStages | SampleError]:
    """Pooled stages of one batch; structures that fail alone come back as :data:`SampleError`."""
    exit_with_parent(parent)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _forward(backbone, crystals, indices)
    except Exception as exc:
        if not is_sample_fault(exc):
            raise BackboneBatchError(
                f"{backbone.name} failed on the batch of structures {list(indices)} ({type(exc).__name__}: {exc}); "
                "no single structure explains it (out of memory, device or program error): "
                "try a smaller batch_size, or device='cpu'"
            ) from exc
        if len(crystals) == 1:
            return [(indices[0], crystals[0].id, _reason(backbone, exc))]
    # some structure broke the batch: find which, one at a time
    return [r for c, i in zip(crystals, indices) for r in _run_batch(backbone, [c], [i], None, parent)]


def _reason(backbone: Backbone, exc: BaseException) -> str:
    if isinstance(exc, InvalidSampleError):
        return exc.problem
    return f"{backbone.name} cannot featurize this structure ({type(exc).__name__}: {problem_of(exc)})"


def extract_pooled_or_errors(
    crystals: Sequence[Crystal],
    backbone: Backbone,
    *,
    batch_size: int,
    indices: Sequence[int] | None = None,
    n_jobs: int | None = None,
    cache: StageCache | None = None,
    progress: bool = False,
    stop_on_error: bool = False,
) -> tuple[list[PooledStages | None], list[SampleError]]:
    """Pooled stage features of every crystal that can be featurized, and the errors of the others.

    Returns one entry per crystal (None where it failed) and ``(index, id, reason)`` per failed
    crystal, sorted by index. ``indices``: the global index of each crystal, for messages
    (default ``0..n-1``). Every crystal is checked first (:func:`check_sample`: elements and
    the geometry guard), so a cell whose graph would not fit in memory is an error naming it,
    never a forward. ``stop_on_error``: return as soon as an error is known (after the
    element checks, or after the batch that holds it), leaving the rest uncomputed. Cached
    structures are read back (entries are checked, see :class:`~skdynemb.cache.StageCache`); the
    rest run in batches of exactly ``batch_size`` structures (one block-diagonal forward each;
    the caller decides it, e.g. :attr:`Extractor.batch_size <skdynemb.extraction.Extractor>`), across ``n_jobs``
    joblib workers when > 1 (any joblib backend, e.g. dask via ``joblib.parallel_config("dask")``).

    Parameters
    ----------
    crystals : sequence of Crystal
        Validated crystals.
    backbone : Backbone
        The loaded backbone.
    batch_size : int
        Structures per forward pass.
    indices : sequence of int, optional
        Global index of each crystal, for messages (default ``0..n-1``).
    n_jobs : int, optional
        joblib workers, one batch each; None or 1 = this process.
    cache : StageCache, optional
        Where cached results are read and new ones written; None = no cache.
    progress : bool, default=False
        tqdm progress bar over the batches.
    stop_on_error : bool, default=False
        Return as soon as an error is known.

    Returns
    -------
    pooled : list of PooledStages or None
        One per crystal, in input order; None where it failed or was not computed.
    errors : list of (int, str or None, str)
        ``(index, id, reason)`` per failed crystal, sorted by index.
    """
    indices = list(range(len(crystals))) if indices is None else list(indices)
    results: list[PooledStages | None] = [None] * len(crystals)
    errors: list[SampleError] = []
    runnable = []
    for k, (crystal, index) in enumerate(zip(crystals, indices)):
        try:
            check_sample(backbone, crystal, index)
            runnable.append(k)
        except InvalidStructureError as exc:
            errors.append((index, crystal.id, exc.problem))
    if errors and stop_on_error:
        return results, errors
    hashes = {k: crystals[k].content_hash() for k in runnable} if cache is not None else {}
    todo = []
    for k in runnable:
        hit = cache.get(hashes[k], crystals[k].numbers) if cache is not None else None
        if hit is None:
            todo.append(k)
        else:
            results[k] = hit
    batches = list(batched(todo, batch_size))
    bar = tqdm(total=len(todo), desc=f"extract[{backbone.name}]", disable=not progress or not todo, leave=False)
    parent = os.getpid()
    tasks = (([crystals[k] for k in b], [indices[k] for k in b]) for b in batches)
    if n_jobs is not None and n_jobs != 1 and len(batches) > 1:
        runs = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_run_batch)(backbone, cs, ix, 1, parent) for cs, ix in tasks
        )
    else:
        runs = (_run_batch(backbone, cs, ix, None, parent) for cs, ix in tasks)
    for batch, outcome in zip(batches, runs):
        for k, result in zip(batch, outcome):
            if isinstance(result, PooledStages):
                results[k] = result
                if cache is not None:
                    cache.put(hashes[k], result)
            else:
                errors.append(result)
        bar.update(len(batch))
        if errors and stop_on_error:
            break
    bar.close()
    return results, sorted(errors, key=lambda e: e[0])

