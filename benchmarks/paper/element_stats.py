"""Element rows beyond the transformer's mean: the population std of each element's atom vectors,
and several stages side by side (the inputs of :mod:`benchmarks.paper.pooling`).

Input names (:func:`benchmarks.paper.data.embeddings` delegates to :func:`stage_inputs`):

- ``dynamic:<a>+<b>...``: the mean rows of stages ``a``, ``b``, ... concatenated (in that order);
- ``dynamic-std:<stage|all>`` (also ``<a>+<b>``): per element, the population standard deviation
  (ddof=0) of its atom vectors at each stage; 0 where the element has one atom (or only
  equivalent ones);
- ``dynamic-meanstd:<a>[+<b>...]``: the mean rows of the stages, then their std rows.

Rows are sorted by atomic number, as the transformer's are. The per-structure std of every stage
is computed in one forward pass and cached on disk under ``<work>/element-std`` by
:class:`skdynemb.cache.StageCache`, keyed on the structure's content hash and the backbone's
identity extended by the name of the statistic (so an entry never serves the mean rows, another
backbone or another structure; entries are checked when read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core.periodic_table import Element

from skdynemb._batches import batched
from skdynemb.cache import StageCache
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.pooling import PooledStages, element_groups
from skdynemb.structures import to_crystal
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

#: what the cached arrays are, part of their cache identity
STATISTIC = "population std (ddof=0) of each element's atom vectors, per stage"


def element_std(atom: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Population std (ddof=0) of each element's rows of ``atom`` (elements sorted by Z), float32.

    Parameters
    ----------
    atom : ndarray of shape (n_atoms, d)
        One stage's atom vectors.
    numbers : ndarray of shape (n_atoms,)
        Atomic number of each atom.

    Returns
    -------
    std : ndarray of shape (n_elements, d)
    """
    _, inverse, counts = element_groups(numbers)
    x = np.asarray(atom, dtype=np.float64)
    mean = np.zeros((len(counts), x.shape[1]))
    np.add.at(mean, inverse, x)
    mean /= counts[:, None]
    var = np.zeros_like(mean)
    np.add.at(var, inverse, (x - mean[inverse]) ** 2)
    return np.sqrt(var / counts[:, None]).astype(np.float32)


def std_cache(transformer: DynamicEmbeddingTransformer, work) -> StageCache:
    """The std entries of ``transformer``'s backbone under ``<work>/element-std``."""
    identity = {**transformer.backbone_identity_, "statistic": STATISTIC}
    return StageCache(Path(work) / "element-std", transformer.backbone_, identity)


def std_embeddings(structures, transformer: DynamicEmbeddingTransformer, work) -> ElementEmbeddings:
    """Per structure, the std rows of every stage side by side (features ``std:<stage>_<k>``).

    Read from the cache under ``<work>/element-std``, else computed (one forward pass per batch of
    the transformer's ``batch_size_``, no standardisation of the cell, as the paper harness's
    transformer) and cached.

    Parameters
    ----------
    structures : sequence
        Structures (anything :func:`skdynemb.structures.to_crystal` accepts).
    transformer : DynamicEmbeddingTransformer
        Fitted; its backbone runs the forward passes.
    work : path
        The run's work folder.

    Returns
    -------
    ElementEmbeddings
        Rows sorted by atomic number, one compound per structure, in order.
    """
    cache, backbone = std_cache(transformer, work), transformer.backbone_
    crystals = [to_crystal(s, index=i) for i, s in enumerate(structures)]
    hashes = [c.content_hash() for c in crystals]
    pooled = [cache.get(h, c.numbers) for h, c in zip(hashes, crystals)]
    for batch in batched([k for k, p in enumerate(pooled) if p is None], transformer.batch_size_):
        for k, output in zip(batch, backbone.forward_stages([crystals[k] for k in batch])):
            numbers = crystals[k].numbers
            z, _, counts = element_groups(numbers)
            pooled[k] = PooledStages(tuple(Element.from_Z(int(e)).symbol for e in z), counts / counts.sum(),
                                     [element_std(atom, numbers) for atom in output.atom], None, None)
            cache.put(hashes[k], pooled[k])
    names = [f"std:{stage}_{j}" for stage, d in zip(backbone.stage_names, backbone.stage_dims) for j in range(d)]
    return ElementEmbeddings([CompoundEmbedding(p.elements, p.fractions, np.concatenate(p.stages, axis=1), c.id)
                              for p, c in zip(pooled, crystals)], np.asarray(names, dtype=object))


def stage_list(what: str, stage_names) -> list[str]:
    """The stages of an input name's ``<a>+<b>...`` part, checked: known, distinct, ``all`` alone."""
    stages = what.split("+")
    if len(stages) > 1 and "all" in stages:
        raise ValueError(f"'all' already holds every stage; it cannot be combined with others ({what!r})")
    if len(set(stages)) != len(stages):
        raise ValueError(f"a stage is named twice in {what!r}")
    unknown = [s for s in stages if s != "all" and s not in stage_names]
    if unknown:
        raise ValueError(f"no stage {unknown[0]!r} in the backbone; its stages: {list(stage_names)} (or 'all')")
    return stages


def side_by_side(parts: list[ElementEmbeddings]) -> ElementEmbeddings:
    """The feature columns of ``parts`` concatenated per element row (same compounds and elements)."""
    first = parts[0]
    for part in parts[1:]:
        if len(part) != len(first) or any(a.elements != b.elements for a, b in zip(first, part)):
            raise ValueError("the embeddings to concatenate hold other compounds or element rows")
    if len(parts) == 1:
        return first
    compounds = [CompoundEmbedding(c.elements, c.fractions, np.concatenate([p[i].features for p in parts], axis=1),
                                   c.id) for i, c in enumerate(first)]
    return ElementEmbeddings(compounds, np.concatenate([p.feature_names for p in parts]))
