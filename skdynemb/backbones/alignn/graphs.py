"""ALIGNN crystal graphs (atom graph + bond-angle line graph), built without DGL.

A graph rule (:class:`KNearestGraph`) reproduces the official ALIGNN builder
(``Graph.atom_dgl_multigraph(neighbor_strategy="k-nearest", cutoff, max_neighbors,
use_canonize)``), tie-breaks included, but vectorised over a C neighbour list (vesin):

1. Cartesian sites are ``frac @ round(lattice, 5)``; periodic images are shifted by the lattice
   *as given*; distances are computed in float64 in the official order of operations and pairs
   with ``0.15 Å < d <= cutoff`` are kept.
2. While some site has fewer than ``max_neighbors`` neighbours, the cutoff grows to the longest
   lattice vector (if shorter than that) or doubles.
3. Each site keeps every neighbour out to its ``max_neighbors``-th distance (exact ties kept).
4. Bonds: with ``canonize=True`` shell entries are folded to ``(min(i, j), max(i, j), image)``
   and de-duplicated, without it every shell entry is a bond; each bond gives two directed
   edges, ``a -> b`` (image n) and ``b -> a`` (image -n). The official graph is therefore a
   *multigraph*: a periodic self-image found as both n and -n is stored twice (both rules), and
   without canonization so is every bond that both its atoms have in their shells.
5. Bond vectors are ``(frac[dst] + image - frac[src]) @ round(lattice, 5)`` (float64, then
   float32); the line graph joins edge pairs ``dst(e1) == src(e2)``, ``e1 != e2``, with the
   bond-angle cosine ``clamp(-r1 . r2 / (|r1| |r2|), -1, 1)`` in float32.

The official step 3 keeps exact ties only: a shell of symmetry-equivalent neighbours whose float64
distances differ in the last bits is cut at the k-th neighbour in an order that round-off decides,
and symmetry-equivalent atoms then get different neighbours and different vectors (in about a third
of MP structures). :class:`TieCompleteGraph` replaces step 3 by "every neighbour
within ``shell_tolerance`` Å of the site's k-th distance": a shell is never cut (see
``benchmarks/results/symmetry.md`` for what this does to the official weights and downstream).

Copies of a directed edge carry identical features at every ALIGNN layer, so
:class:`AlignnGraph` stores each distinct ``(src, dst, image)`` edge once with its multiplicity
``edge_mult``, and the line graph over distinct edges with pair multiplicities ``lg_mult``
(``m1 * m2``, or ``m (m - 1)`` for a self-loop edge paired with its own copies). The network
weights its sums and means by them, which is exactly the multigraph computation;
:meth:`AlignnGraph.expanded` gives the official multigraph itself.

Edges are ordered by ``(src, dst, image)`` and line-graph edges by ``(e1, e2)``, so the graph
of a structure is fully deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Neighbours closer than this (Å) are ignored (the official ``bond_tol``).
BOND_TOL = 0.15
#: Extra radius (Å) asked of the neighbour list before the exact float64 cutoff test.
_NL_MARGIN = 1e-3
#: Give up growing the cutoff beyond this (Å): the structure has too few sites to find neighbours.
_MAX_CUTOFF = 1000.0


@dataclass(frozen=True, eq=False)
class AlignnGraph:
    """One structure's ALIGNN graph (numpy arrays), distinct edges with multiplicities.

    Attributes
    ----------
    atomic_numbers : ndarray of shape (N,), int64
        Atomic number of each site.
    edge_src, edge_dst : ndarray of shape (E,), int64
        Distinct directed edges (both directions of every bond are stored).
    edge_r : ndarray of shape (E, 3), float32
        Bond vector src -> dst in Å.
    edge_image : ndarray of shape (E, 3), int64
        Lattice image of dst, ``edge_r = (frac[dst] + image - frac[src]) @ L``.
    edge_mult : ndarray of shape (E,), int64
        Copies of each edge in the official multigraph (>= 1).
    lg_src, lg_dst : ndarray of shape (T,), int64
        Line-graph edges, as indices into the edges.
    lg_h : ndarray of shape (T,), float32
        Cosine of the bond angle between edges ``lg_src`` and ``lg_dst``.
    lg_mult : ndarray of shape (T,), int64
        Copies of each line-graph edge in the multigraph's line graph (>= 1).
    cutoff : float
        The neighbour cutoff actually used (Å), after any extension.
    """

    atomic_numbers: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_r: np.ndarray
    edge_image: np.ndarray
    edge_mult: np.ndarray
    lg_src: np.ndarray
    lg_dst: np.ndarray
    lg_h: np.ndarray
    lg_mult: np.ndarray
    cutoff: float

    @property
    def num_nodes(self) -> int:
        return len(self.atomic_numbers)

    @property
    def num_edges(self) -> int:
        return len(self.edge_src)

    @property
    def num_lg_edges(self) -> int:
        return len(self.lg_src)

    def expanded(self) -> "AlignnGraph":
        """The official multigraph: every edge repeated ``edge_mult`` times (copies adjacent), its
        line graph built over the copies; all multiplicities 1.

        Returns
        -------
        graph : AlignnGraph
            A new graph with ``edge_mult.sum()`` edges and every multiplicity 1.
        """
        repeat = self.edge_mult
        src, dst = np.repeat(self.edge_src, repeat), np.repeat(self.edge_dst, repeat)
        edge_r = np.repeat(self.edge_r, repeat, axis=0)
        return assemble_graph(self.atomic_numbers, src, dst, edge_r, np.repeat(self.edge_image, repeat, axis=0),
                         np.ones(len(src), dtype=np.int64), self.cutoff)


@dataclass(eq=False)
class AlignnBatch:
    """Many graphs as one block-diagonal graph (torch tensors).

    ``*_offsets`` are (B + 1,) cumulative counts: graph g owns nodes
    ``node_offsets[g]:node_offsets[g + 1]`` and likewise for edges and line-graph edges.
    ``graph_index``, ``edge_graph_index`` and ``lg_graph_index`` give each node / edge /
    line-graph edge its graph. Multiplicities (float32): ``edge_weight`` = copies of an edge
    (its weight in sums into atoms and in bond means), ``lg_count`` = copies of a line-graph
    edge (its weight in angle means), ``lg_weight`` = ``lg_count / edge_weight[lg_dst]``, the
    copies that reach one copy of the destination edge (its weight in sums into edges).

    Attributes
    ----------
    atomic_numbers : Tensor of shape (N,), int64
        Atomic number of every node of the batch.
    edge_src, edge_dst : Tensor of shape (E,), int64
        Distinct directed edges, as batch node indices.
    edge_r : Tensor of shape (E, 3), float32
        Bond vectors src -> dst in Å.
    edge_weight : Tensor of shape (E,), float32
        Copies of each edge.
    lg_src, lg_dst : Tensor of shape (T,), int64
        Line-graph edges, as batch edge indices.
    lg_h : Tensor of shape (T,), float32
        Cosine of each bond angle.
    lg_weight, lg_count : Tensor of shape (T,), float32
        Line-graph edge weights in sums into edges and in angle means (see above).
    graph_index, edge_graph_index, lg_graph_index : Tensor, int64
        Graph of each node (N,), edge (E,) and line-graph edge (T,).
    node_offsets, edge_offsets, lg_offsets : Tensor of shape (B + 1,), int64
        Cumulative counts per graph (see above).
    """

    atomic_numbers: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    edge_r: torch.Tensor
    edge_weight: torch.Tensor
    lg_src: torch.Tensor
    lg_dst: torch.Tensor
    lg_h: torch.Tensor
    lg_weight: torch.Tensor
    lg_count: torch.Tensor
    graph_index: torch.Tensor
    edge_graph_index: torch.Tensor
    lg_graph_index: torch.Tensor
    node_offsets: torch.Tensor
    edge_offsets: torch.Tensor
    lg_offsets: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return len(self.node_offsets) - 1

    @property
    def num_nodes(self) -> int:
        return len(self.atomic_numbers)

    def to(self, device: str | torch.device) -> "AlignnBatch":
        """A copy with every tensor on ``device``.

        Parameters
        ----------
        device : str or torch.device
            Target device, e.g. ``"cpu"`` or ``"cuda:0"``.

        Returns
        -------
        batch : AlignnBatch
            The moved copy (this batch is left unchanged).
        """
        return AlignnBatch(**{k: v.to(device) for k, v in vars(self).items()})


def _lattice_lengths_rounded(lattice5: np.ndarray) -> list[float]:
    """Lattice vector lengths rounded to 6 decimals, as the official cutoff extension sees them."""
    return [round(float(x), 6) for x in np.sqrt(np.sum(lattice5**2, axis=1))]


def _neighbours(cart: np.ndarray, lattice: np.ndarray, cutoff: float):
    """All (i, j, image, d) with ``BOND_TOL < d <= cutoff``, d in the official float64 arithmetic."""
    from vesin import NeighborList

    i, j, shifts = NeighborList(cutoff=cutoff + _NL_MARGIN, full_list=True).compute(
        points=cart, box=lattice, periodic=True, quantities="ijS"
    )
    i, j, shifts = i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
    diff = (np.dot(shifts.astype(np.float64), lattice) + cart[j]) - cart[i]
    d = np.sqrt(np.sum(diff**2, axis=-1))
    keep = (d <= cutoff) & (d > BOND_TOL)
    return i[keep], j[keep], shifts[keep], d[keep]


def _probe_radius(crystal, max_neighbors: int) -> float:
    """Radius (Å) expected to hold ~3 * max_neighbors neighbours at the cell's mean density."""
    density = crystal.num_sites / abs(np.linalg.det(crystal.lattice))
    return float((3 * (3 * max_neighbors) / (4 * np.pi * density)) ** (1 / 3))


def _knn_shells(crystal, cutoff: float, max_neighbors: int, shell_tolerance: float = 0.0):
    """Every site's k-nearest shell as rows (i, j, image), and the cutoff used.

    A site keeps the neighbours out to its ``max_neighbors``-th distance plus ``shell_tolerance``
    (Å; 0 = exact ties only, the official rule). A smaller probe radius is tried first: when every
    site has ``max_neighbors`` neighbours within it, its neighbour list already holds every site's
    whole k-nearest shell, so the result is the same as with the full cutoff, from far fewer pairs
    (a tolerance reaching past the searched radius is searched out to).
    """
    lattice = np.asarray(crystal.lattice, dtype=np.float64)
    lattice5 = np.around(lattice, 5)
    cart = np.dot(np.asarray(crystal.frac_coords, dtype=np.float64), lattice5)
    n = len(cart)
    radius = min(_probe_radius(crystal, max_neighbors), cutoff)
    while True:
        i, j, shifts, d = _neighbours(cart, lattice, radius)
        counts = np.bincount(i, minlength=n)
        if counts.min() >= max_neighbors:
            break
        if radius < cutoff:  # the probe was too small: use the cutoff itself
            radius = cutoff
            continue
        longest = max(_lattice_lengths_rounded(lattice5))
        cutoff = longest if cutoff < longest else 2 * cutoff
        if cutoff > _MAX_CUTOFF:
            raise ValueError(
                f"{'' if crystal.id is None else f'structure {crystal.id!r}: '}fewer than {max_neighbors} neighbours within "
                f"{_MAX_CUTOFF} Å for some site; the cell is too sparse for a k-nearest graph"
            )
        radius = cutoff
    order = np.lexsort((d, i))
    i, j, shifts, d = i[order], j[order], shifts[order], d[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    reach = d[first + max_neighbors - 1] + shell_tolerance
    if reach.max() > radius:  # the tolerance reaches past the searched radius: search out to it
        i, j, shifts, d = _neighbours(cart, lattice, float(reach.max()))
    keep = d <= reach[i]
    return np.column_stack([i[keep], j[keep], shifts[keep]]), cutoff


def _directed_edges(shells: np.ndarray, canonize: bool) -> np.ndarray:
    """The directed multigraph's edges (src, dst, image) as rows, one row per copy.

    Every stored bond (a, b, n) gives ``a -> b`` (image n) and ``b -> a`` (image -n). With
    ``canonize`` the bonds are the shell entries folded to ``(min, max, image)`` and
    de-duplicated (a bond seen from both ends is stored once); without, every shell entry is a
    bond of its own (a mutual bond is stored twice).
    """
    i, j, image = shells[:, 0], shells[:, 1], shells[:, 2:]
    if canonize:
        swap = j < i
        bonds = np.column_stack([np.where(swap, j, i), np.where(swap, i, j), np.where(swap[:, None], -image, image)])
        _, first_of_each = np.unique(_lex_keys(bonds), return_index=True)
        bonds = bonds[first_of_each]
        i, j, image = bonds[:, 0], bonds[:, 1], bonds[:, 2:]
    return np.vstack([np.column_stack([i, j, image]), np.column_stack([j, i, -image])])


def _lex_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of a small-integer matrix that sorts like the rows do (lexicographic)."""
    low = rows.min(axis=0)
    span = rows.max(axis=0) - low + 1
    if np.sum(np.log2(span.astype(np.float64))) > 62:
        raise ValueError("graph too large to index: more than 2**62 (atom, atom, image) combinations")
    keys = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):  # 5 columns, not a loop over atoms or edges
        keys = keys * span[column] + (rows[:, column] - low[column])
    return keys


def line_graph(src: np.ndarray, dst: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """ALIGNN's line graph of a directed graph: the edge pairs (e1, e2) with dst[e1] == src[e2] and
    e1 != e2 (bond e1 then bond e2 form an angle at their shared atom), as two index arrays into the
    edge list, sorted by (e1, e2). The edges must be sorted by ``src``; ``n_nodes`` atoms.

    Parameters
    ----------
    src, dst : ndarray of shape (E,), int
        Source and destination atom of each directed edge, sorted by ``src``.
    n_nodes : int
        Number of atoms (nodes).

    Returns
    -------
    e1, e2 : ndarray of shape (T,), int64
        The line-graph edges, as indices into the edge list.
    """
    e1, e2 = _all_pairs(src, dst, n_nodes)
    keep = e1 != e2
    return e1[keep], e2[keep]


def weighted_line_graph(src, dst, mult, n_nodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The line graph of a multigraph given as distinct edges with multiplicities ``mult``.

    Returns (e1, e2, count), sorted by (e1, e2): every pair with ``dst[e1] == src[e2]`` and
    ``count`` = the pairs of copies it stands for, ``mult[e1] * mult[e2]``, or ``m (m - 1)`` when
    e1 == e2 (a self-loop edge pairs with its other copies, not with itself); pairs of count 0
    are left out. The edges must be sorted by ``src``.

    Parameters
    ----------
    src, dst : ndarray of shape (E,), int
        Source and destination atom of each distinct directed edge, sorted by ``src``.
    mult : ndarray of shape (E,), int
        Copies of each edge in the multigraph (>= 1).
    n_nodes : int
        Number of atoms (nodes).

    Returns
    -------
    e1, e2 : ndarray of shape (T,), int64
        The line-graph edges, as indices into the edge list.
    count : ndarray of shape (T,), int64
        Copies of each line-graph edge in the multigraph's line graph (>= 1).
    """
    e1, e2 = _all_pairs(src, dst, n_nodes)
    count = mult[e1] * (mult[e2] - (e1 == e2))
    keep = count > 0
    return e1[keep], e2[keep], count[keep]


def _all_pairs(src, dst, n_nodes):
    out_degree = np.bincount(src, minlength=n_nodes)
    first_out = np.concatenate([[0], np.cumsum(out_degree)[:-1]])
    per_e1 = out_degree[dst]
    e1 = np.repeat(np.arange(len(src)), per_e1)
    rank = np.arange(len(e1)) - np.repeat(np.cumsum(per_e1) - per_e1, per_e1)
    return e1, first_out[dst][e1] + rank


def bond_cosines(edge_r: torch.Tensor, lg_src: torch.Tensor, lg_dst: torch.Tensor) -> torch.Tensor:
    """Cosine of the angle at the shared atom between bonds lg_src and lg_dst (official formula).

    Parameters
    ----------
    edge_r : torch.Tensor of shape (E, 3)
        Bond vectors src -> dst in Å.
    lg_src, lg_dst : torch.Tensor of shape (T,), int64
        Line-graph edges, as indices into the bonds.

    Returns
    -------
    cos : torch.Tensor of shape (T,)
        Cosine of each bond angle (dtype of ``edge_r``), clamped to [-1, 1].
    """
    length = torch.norm(edge_r, dim=1)
    cos = torch.sum(-edge_r[lg_src] * edge_r[lg_dst], dim=1) / (length[lg_src] * length[lg_dst])
    return torch.clamp(cos, -1, 1)


def assemble_graph(numbers, src, dst, edge_r, image, mult, cutoff) -> AlignnGraph:
    """An :class:`AlignnGraph` from distinct edges sorted by ``src`` (with their multiplicities
    ``mult`` and vectors ``edge_r``, float32 Å): adds the weighted line graph and its cosines.

    Parameters
    ----------
    numbers : array-like of shape (N,), int
        Atomic number of each site.
    src, dst : ndarray of shape (E,), int64
        Distinct directed edges, sorted by ``src``.
    edge_r : ndarray of shape (E, 3), float32
        Bond vector src -> dst in Å.
    image : ndarray of shape (E, 3), int64
        Lattice image of dst.
    mult : ndarray of shape (E,), int64
        Copies of each edge in the official multigraph (>= 1).
    cutoff : float
        The neighbour cutoff used (Å).

    Returns
    -------
    graph : AlignnGraph
        The graph with its line graph (``lg_*``) filled in.
    """
    lg_src, lg_dst, lg_mult = weighted_line_graph(src, dst, mult, len(numbers))
    lg_h = bond_cosines(torch.from_numpy(edge_r), torch.from_numpy(lg_src), torch.from_numpy(lg_dst))
    return AlignnGraph(
        atomic_numbers=np.asarray(numbers, dtype=np.int64).copy(), edge_src=src, edge_dst=dst, edge_r=edge_r,
        edge_image=image, edge_mult=mult, lg_src=lg_src, lg_dst=lg_dst, lg_h=lg_h.numpy(), lg_mult=lg_mult,
        cutoff=cutoff,
    )


@dataclass(frozen=True)
class KNearestGraph:
    """The official ALIGNN k-nearest-neighbour graph rule (see the module docstring).

    Attributes
    ----------
    cutoff : float
        Initial neighbour cutoff in Å (grown automatically when a site has too few neighbours).
    max_neighbors : int
        k, the neighbour shell every site keeps.
    canonize : bool
        ``use_canonize`` of the official builder: fold a bond seen from both ends into one
        (the default of alignn's training config and pretrained-model inference) or keep every
        site's shell as found (ALIGNN-FF).

    See Also
    --------
    TieCompleteGraph : the same rule with shells never cut at the k-th neighbour.
    """

    cutoff: float = 8.0
    max_neighbors: int = 12
    canonize: bool = True

    #: Å beyond the k-th distance a neighbour is still kept (0: exact ties only, the official rule)
    _shell_tolerance = 0.0

    def __post_init__(self):
        if not (isinstance(self.cutoff, (int, float)) and self.cutoff > BOND_TOL):
            raise ValueError(f"cutoff must be a number of Å above {BOND_TOL}, got {self.cutoff!r}")
        k = self.max_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"max_neighbors must be a positive integer, got {self.max_neighbors!r}")
        if not isinstance(self.canonize, (bool, np.bool_)):
            raise ValueError(f"canonize must be True or False, got {self.canonize!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        object.__setattr__(self, "max_neighbors", int(self.max_neighbors))
        object.__setattr__(self, "canonize", bool(self.canonize))

    @property
    def key(self) -> str:
        """A stable text naming the rule, for cache keys.

        Returns
        -------
        key : str
            ``"k-nearest|cutoff=...|max_neighbors=...|canonize=..."``.
        """
        return f"k-nearest|cutoff={self.cutoff!r}|max_neighbors={self.max_neighbors}|canonize={self.canonize}"

    def to_config(self) -> dict:
        """The official training-config keys of this rule.

        Returns
        -------
        config : dict
            ``neighbor_strategy``, ``cutoff`` (Å), ``max_neighbors``, ``use_canonize`` and
            ``atom_features``, as alignn's training config spells them.
        """
        return {"neighbor_strategy": "k-nearest", "cutoff": self.cutoff, "max_neighbors": self.max_neighbors,
                "use_canonize": self.canonize, "atom_features": "cgcnn"}

    @classmethod
    def from_config(cls, config: dict, source: str = "config") -> "KNearestGraph":
        """The rule of an official training config (missing keys take alignn's defaults:
        k-nearest, 8 Å, 12 neighbours, ``use_canonize`` True, cgcnn atom features). A config
        with ``shell_tolerance`` (written by :func:`~skdynemb.backbones.alignn.checkpoints.save_checkpoint`
        for a :class:`TieCompleteGraph`; alignn itself ignores the key) gives that rule.

        Parameters
        ----------
        config : dict
            An alignn training config (``config.json`` of a checkpoint).
        source : str, default="config"
            What the config came from, for error messages.

        Returns
        -------
        rule : KNearestGraph or TieCompleteGraph
            The graph rule the model was trained with.

        Raises
        ------
        ValueError
            The config names another neighbour strategy or atom features than k-nearest / cgcnn.
        """
        strategy = config.get("neighbor_strategy", "k-nearest")
        features = config.get("atom_features", "cgcnn")
        if strategy != "k-nearest" or features != "cgcnn":
            raise ValueError(
                f"{source}: trained on neighbor_strategy={strategy!r}, atom_features={features!r}; "
                "only the k-nearest graph with cgcnn atom features is supported"
            )
        settings = (float(config.get("cutoff", 8.0)), int(config.get("max_neighbors", 12)),
                    bool(config.get("use_canonize", True)))
        if "shell_tolerance" in config:
            return TieCompleteGraph(*settings, shell_tolerance=config["shell_tolerance"])
        return cls(*settings)

    def build(self, crystal) -> AlignnGraph:
        """The graph and line graph of one crystal (:class:`~skdynemb.structures.Crystal`; other
        structure types are coerced).

        Parameters
        ----------
        crystal : Crystal or structure
            A :class:`~skdynemb.structures.Crystal`, or anything
            :func:`~skdynemb.structures.to_crystal` accepts (pymatgen, ASE, jarvis structures).

        Returns
        -------
        graph : AlignnGraph
            Distinct edges with multiplicities, their line graph and the cutoff actually used (Å).
        """
        from skdynemb.structures import Crystal, to_crystal

        if not isinstance(crystal, Crystal):
            crystal = to_crystal(crystal)
        shells, used_cutoff = _knn_shells(crystal, self.cutoff, self.max_neighbors, self._shell_tolerance)
        rows = _directed_edges(shells, self.canonize)
        keys = _lex_keys(rows)
        _, first, mult = np.unique(keys, return_index=True, return_counts=True)  # sorted by (src, dst, image)
        rows = rows[first]
        src, dst, image = rows[:, 0], rows[:, 1], rows[:, 2:]
        # the official order of operations: a bond's vector from its lower site, negated for the reverse
        flip = src > dst
        low, high = np.where(flip, dst, src), np.where(flip, src, dst)
        frac = np.asarray(crystal.frac_coords, dtype=np.float64)
        vec = np.dot((frac[high] + np.where(flip[:, None], -image, image)) - frac[low],
                     np.around(np.asarray(crystal.lattice, dtype=np.float64), 5))
        vec[flip] *= -1
        return assemble_graph(crystal.numbers, src, dst, vec.astype(np.float32), image, mult.astype(np.int64),
                              used_cutoff)


@dataclass(frozen=True)
class TieCompleteGraph(KNearestGraph):
    """The k-nearest rule with complete shells: symmetry-equivalent atoms get equivalent graphs.

    Every site keeps each neighbour whose distance is within ``shell_tolerance`` of its
    ``max_neighbors``-th nearest distance, so a shell of (nearly) equidistant neighbours is kept
    whole instead of being cut at the k-th one in an arbitrary order; a site may then have more
    than ``max_neighbors`` neighbours. Everything else is :class:`KNearestGraph` (cutoff growth,
    canonization, vectors, line graph). With it, atoms that a space-group operation maps onto
    each other (within ``shell_tolerance``) get the same neighbourhoods, so equal rows up to
    float32 summation order; with the official rule they often do not
    (``benchmarks/results/symmetry.md``).

    Attributes
    ----------
    cutoff, max_neighbors, canonize
        As in :class:`KNearestGraph`.
    shell_tolerance : float
        Distance in Å beyond the k-th nearest distance within which neighbours still belong to
        the shell (default 1e-3 Å: far above float64 round-off and the rounding of CIF
        coordinates, well below the usual gap between distinct shells; 1e-4 and 1e-2 Å are
        measured in ``benchmarks/results/symmetry.md``). Must be above 0 and below
        :data:`BOND_TOL`; the official rule is :class:`KNearestGraph`.
    """

    shell_tolerance: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        tol = self.shell_tolerance
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not 0 < tol < BOND_TOL:
            raise ValueError(
                f"shell_tolerance must be a distance in Å above 0 and below {BOND_TOL}, got {tol!r} "
                "(the official rule, exact ties only, is KNearestGraph)"
            )
        object.__setattr__(self, "shell_tolerance", float(tol))

    @property
    def _shell_tolerance(self) -> float:
        return self.shell_tolerance

    @property
    def key(self) -> str:
        """A stable text naming the rule, for cache keys.

        Returns
        -------
        key : str
            The :class:`KNearestGraph` key followed by ``"|shell_tolerance=..."``.
        """
        return f"{super().key}|shell_tolerance={self.shell_tolerance!r}"

    def to_config(self) -> dict:
        """The official training-config keys of this rule, plus ``shell_tolerance``.

        Returns
        -------
        config : dict
            :meth:`KNearestGraph.to_config` with ``shell_tolerance`` (Å) added.
        """
        return {**super().to_config(), "shell_tolerance": self.shell_tolerance}


def batch_graphs(graphs: Sequence[AlignnGraph]) -> AlignnBatch:
    """Concatenate graphs into one block-diagonal :class:`AlignnBatch` (indices offset per graph).

    Parameters
    ----------
    graphs : sequence of AlignnGraph
        At least one graph.

    Returns
    -------
    batch : AlignnBatch
        The graphs as one graph, CPU tensors.

    Raises
    ------
    ValueError
        ``graphs`` is empty.
    """
    if len(graphs) == 0:
        raise ValueError("batch_graphs needs at least one graph")
    sizes = np.array([[g.num_nodes, g.num_edges, g.num_lg_edges] for g in graphs], dtype=np.int64)
    offsets = np.vstack([np.zeros((1, 3), dtype=np.int64), np.cumsum(sizes, axis=0)])
    node_off, edge_off = offsets[:-1, 0], offsets[:-1, 1]
    n_edges, n_lg = sizes[:, 1], sizes[:, 2]
    graph_ids = np.arange(len(graphs))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in graphs])

    t = torch.from_numpy
    edge_mult, lg_dst = cat("edge_mult"), cat("lg_dst") + np.repeat(edge_off, n_lg)
    lg_mult = cat("lg_mult")
    return AlignnBatch(
        atomic_numbers=t(cat("atomic_numbers")),
        edge_src=t(cat("edge_src") + np.repeat(node_off, n_edges)),
        edge_dst=t(cat("edge_dst") + np.repeat(node_off, n_edges)),
        edge_r=t(cat("edge_r")),
        edge_weight=t(edge_mult.astype(np.float32)),
        lg_src=t(cat("lg_src") + np.repeat(edge_off, n_lg)),
        lg_dst=t(lg_dst),
        lg_h=t(cat("lg_h")),
        lg_weight=t((lg_mult // edge_mult[lg_dst]).astype(np.float32)),
        lg_count=t(lg_mult.astype(np.float32)),
        graph_index=t(np.repeat(graph_ids, sizes[:, 0])),
        edge_graph_index=t(np.repeat(graph_ids, n_edges)),
        lg_graph_index=t(np.repeat(graph_ids, n_lg)),
        node_offsets=t(offsets[:, 0].copy()),
        edge_offsets=t(offsets[:, 1].copy()),
        lg_offsets=t(offsets[:, 2].copy()),
    )
