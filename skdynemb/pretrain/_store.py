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

from skdynemb._files import atomic_write
from skdynemb.errors import InvalidStructureError
from skdynemb.backbones.alignn.graphs import AlignnBatch, AlignnGraph, KNearestGraph, assemble_graph, batch_graphs

_FORMAT = "skdynemb-alignn-graphs-2"
_ARRAYS = ("atomic_numbers", "edge_src", "edge_dst", "edge_r", "edge_image", "edge_mult", "node_offsets",
           "edge_offsets", "cutoffs")


def graph_key(crystals: Sequence, rule: KNearestGraph) -> str:
    """SHA-256 naming a set of graphs: the format, the graph rule and every structure's content."""
    h = hashlib.sha256(f"{_FORMAT}|{rule.key}".encode())
    for crystal in crystals:
        h.update(crystal.content_hash().encode())
    return h.hexdigest()


@dataclass(eq=False)
class GraphStore:
    """The ALIGNN atom graphs of many structures, concatenated.

    Structure ``s`` owns sites ``node_offsets[s]:node_offsets[s + 1]`` and directed bonds
    ``edge_offsets[s]:edge_offsets[s + 1]``. Build one with :meth:`build` or :meth:`cached`.

    Parameters
    ----------
    atomic_numbers : ndarray of int
        Atomic number of every site, structure after structure.
    edge_src, edge_dst : ndarray of int
        Site indices, local to their structure, of every directed bond.
    edge_r : ndarray of shape (n_edges, 3), float32
        Bond vectors in Å.
    edge_image, edge_mult : ndarray of int
        Periodic image and multiplicity of every bond, as in
        :class:`~skdynemb.backbones.alignn.graphs.AlignnGraph`.
    node_offsets, edge_offsets : ndarray of int
        Where each structure's sites and bonds start (length n_structures + 1).
    cutoffs : ndarray of float
        The neighbour cutoff each graph used (Å).
    key : str
        :func:`graph_key` of the structures and the rule the graphs were built with.
    """

    atomic_numbers: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_r: np.ndarray
    edge_image: np.ndarray
    edge_mult: np.ndarray
    node_offsets: np.ndarray
    edge_offsets: np.ndarray
    cutoffs: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.node_offsets) - 1

    @classmethod
    def build(cls, crystals: Sequence, rule: KNearestGraph = KNearestGraph(), progress: bool = False):
        """Build every structure's graph with ``rule``."""
        from tqdm.auto import tqdm

        graphs = []
        for i, crystal in enumerate(tqdm(crystals, desc="ALIGNN graphs", disable=not progress, unit="structure")):
            try:
                graphs.append(rule.build(crystal))
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
            edge_mult=cat("edge_mult", np.int32),
            node_offsets=offsets[:, 0].copy(),
            edge_offsets=offsets[:, 1].copy(),
            cutoffs=np.array([g.cutoff for g in graphs], dtype=np.float64),
            key=graph_key(crystals, rule),
        )

    def save(self, path: str | Path) -> None:
        """Write an uncompressed ``.npz`` atomically (temporary file, then rename).

        Parameters
        ----------
        path : str or Path
            The file to write.
        """
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
    def cached(cls, crystals: Sequence, rule: KNearestGraph, path: str | Path, progress: bool = False):
        """The graphs of ``crystals``, read from ``path`` when it holds exactly these, else built and saved there."""
        path = Path(path)
        key = graph_key(crystals, rule)
        if path.is_file():
            try:
                store = cls.load(path)
            except (OSError, ValueError):
                store = None  # unreadable (e.g. a foreign file): rebuilt below
            if store is not None and store.key == key:
                return store
        store = cls.build(crystals, rule, progress)
        store.save(path)
        return store

    def graph(self, index: int) -> AlignnGraph:
        """Structure ``index``'s full graph, line graph included (same as building it afresh).

        Parameters
        ----------
        index : int
            The structure's position in the store.

        Returns
        -------
        graph : AlignnGraph
            Its graph.
        """
        n0, n1 = self.node_offsets[index], self.node_offsets[index + 1]
        e0, e1 = self.edge_offsets[index], self.edge_offsets[index + 1]
        return assemble_graph(
            self.atomic_numbers[n0:n1], self.edge_src[e0:e1].astype(np.int64), self.edge_dst[e0:e1].astype(np.int64),
            self.edge_r[e0:e1], self.edge_image[e0:e1].astype(np.int64), self.edge_mult[e0:e1].astype(np.int64),
            float(self.cutoffs[index]),
        )

    def batch(self, indices: Sequence[int], expand: bool = False) -> AlignnBatch:
        """Block-diagonal batch of the structures ``indices`` (in that order).

        Parameters
        ----------
        indices : sequence of int
            Positions of the structures in the store.
        expand : bool, default=False
            Give the official multigraphs
            (:meth:`~skdynemb.backbones.alignn.graphs.AlignnGraph.expanded`), which BatchNorm
            training needs: its batch statistics count every copy of an edge.

        Returns
        -------
        batch : AlignnBatch
            The structures' graphs joined into one.
        """
        graphs = [self.graph(int(i)) for i in indices]
        return batch_graphs([g.expanded() for g in graphs] if expand else graphs)
