"""Batched extraction: crystals -> per-structure :class:`PooledStages`, with cache and workers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from skdynemb._device import resolve_device  # noqa: F401  (re-exported: extraction.resolve_device)
from skdynemb.backbones.base import Backbone
from skdynemb.cache import StageCache
from skdynemb.pooling import PooledStages, pool_by_element
from skdynemb.structures import Crystal


def _run_batch(backbone: Backbone, crystals: Sequence[Crystal], threads: int | None) -> list[PooledStages]:
    if threads is not None:
        torch.set_num_threads(threads)
    outputs = backbone.forward_stages(crystals)
    return [pool_by_element(c.numbers, out) for c, out in zip(crystals, outputs)]


def extract_pooled(
    crystals: Sequence[Crystal],
    backbone: Backbone,
    *,
    batch_size: int = 64,
    n_jobs: int | None = None,
    cache: StageCache | None = None,
    progress: bool = False,
) -> list[PooledStages]:
    """Pooled stage features for every crystal, in input order.

    Cached structures are read back; the rest run in batches of ``batch_size`` (one
    block-diagonal forward each), across ``n_jobs`` joblib workers when > 1 (any joblib
    backend, e.g. dask via ``joblib.parallel_config("dask")``).
    """
    for i, crystal in enumerate(crystals):
        backbone.check_elements(crystal, i)
    results: list[PooledStages | None] = [None] * len(crystals)
    hashes = [c.content_hash() for c in crystals] if cache is not None else None
    todo = []
    for i in range(len(crystals)):
        hit = cache.get(hashes[i]) if cache is not None else None
        if hit is None:
            todo.append(i)
        else:
            results[i] = hit
    batches = [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)]
    bar = tqdm(total=len(todo), desc=f"extract[{backbone.name}]", disable=not progress or not todo, leave=False)
    if n_jobs is not None and n_jobs != 1 and len(batches) > 1:
        runs = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_run_batch)(backbone, [crystals[i] for i in b], 1) for b in batches
        )
    else:
        runs = (_run_batch(backbone, [crystals[i] for i in b], None) for b in batches)
    for batch, pooled in zip(batches, runs):
        for i, p in zip(batch, pooled):
            results[i] = p
            if cache is not None:
                cache.put(hashes[i], p)
        bar.update(len(batch))
    bar.close()
    return results
