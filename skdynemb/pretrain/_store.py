"""ALIGNN graphs of a whole training set, built once, kept in flat arrays and cached on disk.

Only the atom graphs are stored (sites, directed bonds with their vectors and images); the
bond-angle line graph of a batch is rebuilt from them when the batch is drawn. It is a pure,
cheap function of the bonds (~10 ms for 64 structures) but ~10x larger than they are, so a
36,737-structure set needs ~0.3 GB instead of several GB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from skdynemb._files import atomic_write
from skdynemb.errors import InvalidStructureError
from skdynemb.graphs import AlignnBatch, AlignnGraph, line_graph, batch_graphs, bond_cosines, build_alignn_graph

_FORMAT = "skdynemb-alignn-graphs-1"
_ARRAYS = ("atomic_numbers", "edge_src", "edge_dst", "edge_r", "edge_image", "node_offsets", "edge_offsets", "cutoffs")


def graph_key(crystals: Sequence, cutoff: float, max_neighbors: int) -> str:
    """SHA-256 naming a set of graphs: the format, the graph settings and every structure's content."""
    h = hashlib.sha256(f"{_FORMAT}|{float(cutoff)!r}|{int(max_neighbors)}".encode())
    for crystal in crystals:
        h.update(crystal.content_hash().encode())
    return h.hexdigest()


@dataclass(eq=False)
class GraphStore:
    """The ALIGNN atom graphs of many structures, concatenated.

    Structure ``s`` owns sites ``node_offsets[s]:node_offsets[s + 1]`` and directed bonds
    ``edge_offsets[s]:edge_offsets[s + 1]``; ``edge_src`` / ``edge_dst`` are site indices local
    to their structure, ``edge_r`` (Å, float32) and ``edge_image`` as in
    :class:`~skdynemb.graphs.AlignnGraph`, ``cutoffs`` the neighbour cutoff each graph used (Å).
    ``key`` is :func:`graph_key` of the structures and settings the graphs were built from.
    """

    atomic_numbers: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_r: np.ndarray
    edge_image: np.ndarray
    node_offsets: np.ndarray
    edge_offsets: np.ndarray
    cutoffs: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.node_offsets) - 1

    @classmethod
    def build(cls, crystals: Sequence, cutoff: float = 8.0, max_neighbors: int = 12, progress: bool = False):
        """Build every structure's graph (:func:`~skdynemb.graphs.build_alignn_graph`)."""
        from tqdm.auto import tqdm

        graphs = []
        for i, crystal in enumerate(tqdm(crystals, desc="ALIGNN graphs", disable=not progress, unit="structure")):
            try:
                graphs.append(build_alignn_graph(crystal, cutoff, max_neighbors))
            except ValueError as exc:
                raise InvalidStructureError(i, crystal.id, f"cannot build its ALIGNN graph: {exc}") from exc
        sizes = np.array([[g.num_nodes, g.num_edges] for g in graphs], dtype=np.int64).reshape(-1, 2)
        offsets = np.vstack([np.zeros((1, 2), dtype=np.int64), np.cumsum(sizes, axis=0)])

        def cat(name, dtype):
            return np.concatenate([getattr(g, name).astype(dtype, copy=False) for g in graphs])

        return cls(
            atomic_numbers=cat("atomic_numbers", np.int64),
            edge_src=cat("edge_src", np.int32),
            edge_dst=cat("edge_dst", np.int32),
            edge_r=cat("edge_r", np.float32).reshape(-1, 3),
            edge_image=cat("edge_image", np.int32).reshape(-1, 3),
            node_offsets=offsets[:, 0].copy(),
            edge_offsets=offsets[:, 1].copy(),
            cutoffs=np.array([g.cutoff for g in graphs], dtype=np.float64),
            key=graph_key(crystals, cutoff, max_neighbors),
        )

    def save(self, path: str | Path) -> None:
        """Write an uncompressed ``.npz`` atomically (temporary file, then rename)."""
        arrays = {"key": np.array(self.key), **{name: getattr(self, name) for name in _ARRAYS}}

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "GraphStore":
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in (*_ARRAYS, "key") if name not in data]
            if missing:
                raise ValueError(f"{path}: not a graph cache (missing {missing})")
            return cls(key=str(data["key"]), **{name: data[name] for name in _ARRAYS})

    @classmethod
    def cached(cls, crystals: Sequence, cutoff: float, max_neighbors: int, path: str | Path, progress: bool = False):
        """The graphs of ``crystals``, read from ``path`` when it holds exactly these, else built and saved there."""
        path = Path(path)
        key = graph_key(crystals, cutoff, max_neighbors)
        if path.is_file():
            try:
                store = cls.load(path)
            except (OSError, ValueError):
                store = None  # unreadable (e.g. a foreign file): rebuilt below
            if store is not None and store.key == key:
                return store
        store = cls.build(crystals, cutoff, max_neighbors, progress)
        store.save(path)
        return store

    def graph(self, index: int) -> AlignnGraph:
        """Structure ``index``'s full graph, line graph included (same as building it afresh)."""
        n0, n1 = self.node_offsets[index], self.node_offsets[index + 1]
        e0, e1 = self.edge_offsets[index], self.edge_offsets[index + 1]
        src, dst = self.edge_src[e0:e1].astype(np.int64), self.edge_dst[e0:e1].astype(np.int64)
        edge_r = self.edge_r[e0:e1]
        lg_src, lg_dst = line_graph(src, dst, int(n1 - n0))
        lg_h = bond_cosines(torch.from_numpy(edge_r), torch.from_numpy(lg_src), torch.from_numpy(lg_dst))
        return AlignnGraph(
            atomic_numbers=self.atomic_numbers[n0:n1],
            edge_src=src,
            edge_dst=dst,
            edge_r=edge_r,
            edge_image=self.edge_image[e0:e1].astype(np.int64),
            lg_src=lg_src,
            lg_dst=lg_dst,
            lg_h=lg_h.numpy(),
            cutoff=float(self.cutoffs[index]),
        )

    def batch(self, indices: Sequence[int]) -> AlignnBatch:
        """Block-diagonal batch of the structures ``indices`` (in that order)."""
        return batch_graphs([self.graph(int(i)) for i in indices])
