"""The geometry guard: cells whose neighbour lists would blow up are rejected before any forward.

A backbone builds its graph from the neighbours of every site within a cutoff (CHGNet: 6 Å atom
graph and, from it, every pair of bonds ≤ 3 Å sharing an atom; CGCNN and ALIGNN: 8 Å before
keeping the 12 nearest). A cell that no real material has (a 1-atom cell with a 0.3 Å lattice,
many atoms collapsed onto one spot) has tens of thousands of neighbours per site there and makes
the graph cost gigabytes (CHGNet's angle list grows with the square of the neighbour count) or
hang. :func:`check_geometry` rejects such a cell, naming the sample and the count it would have
had, at a cost bounded by the cell's own size: the count is first estimated from the density of
sites and of periodic images (no neighbour list is built when that estimate is already too high),
and only then counted exactly.

The bound is data. A backbone declares it with a ``neighbour_bound`` attribute (a
:class:`NeighbourBound`) or its cutoff with a ``neighbour_cutoff`` or numeric ``cutoff`` attribute
(Å); otherwise the cutoff is read from the backbone's own objects (an ALIGNN graph rule's ``cutoff``, CHGNet's
``graph_converter.atom_graph_cutoff``), else :data:`DEFAULT_CUTOFF`. The number of neighbours
allowed within a cutoff ``r`` is ``MAX_DENSITY * 4/3 pi r^3``: the count of a crystal
:data:`MAX_DENSITY` sites per Å³ dense. The densest of 9,888 real crystals checked (JARVIS,
Matbench dielectric, 4,000 Materials Project entries; diamond-like carbon) has 0.175 sites per Å³
and at most 158 neighbours within 6 Å (414 within 8 Å), about a sixth of the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skdynemb.errors import InvalidStructureError

#: Sites per Å³ of the densest cell accepted (diamond, the densest real crystal, has 0.176).
MAX_DENSITY = 1.0
#: Cutoff (Å) of a backbone that declares none (CGCNN's neighbour search radius).
DEFAULT_CUTOFF = 8.0


@dataclass(frozen=True)
class NeighbourBound:
    """How many neighbours a site may have within a backbone's cutoff.

    Attributes
    ----------
    cutoff : float
        Neighbour cutoff in Å (periodic images included).
    max_neighbours : int
        Most neighbours (sites and periodic images, the site's own images included) any one site
        may have within ``cutoff``.
    """

    cutoff: float
    max_neighbours: int

    @classmethod
    def for_cutoff(cls, cutoff: float) -> "NeighbourBound":
        """The bound of a cutoff (Å): the neighbours of a site in a crystal :data:`MAX_DENSITY` dense."""
        cutoff = float(cutoff)
        if not (math.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"a neighbour cutoff must be a positive number of Å, got {cutoff!r}")
        return cls(cutoff, math.ceil(MAX_DENSITY * 4.0 / 3.0 * math.pi * cutoff**3))


def bound_of(backbone) -> NeighbourBound:
    """The :class:`NeighbourBound` of ``backbone`` (see the module docstring for where it is read)."""
    declared = getattr(backbone, "neighbour_bound", None)
    if isinstance(declared, NeighbourBound):
        return declared
    cutoff = getattr(backbone, "neighbour_cutoff", None)
    if cutoff is None and isinstance(getattr(backbone, "cutoff", None), (int, float)):
        cutoff = backbone.cutoff  # a backbone's public graph cutoff (e.g. SevenNet's 5 Å)
    if cutoff is None:
        cutoff = getattr(getattr(backbone, "rule", None), "cutoff", None)
    if cutoff is None:
        converter = getattr(getattr(backbone, "module", None), "graph_converter", None)
        cutoff = getattr(converter, "atom_graph_cutoff", None)
    return NeighbourBound.for_cutoff(DEFAULT_CUTOFF if cutoff is None else cutoff)


def _estimate(lattice: np.ndarray, n_sites: int, cutoff: float) -> tuple[float, str]:
    """Neighbours per site within ``cutoff`` from densities alone (no neighbour list), and of what.

    The largest of: the site density (sites per cell volume, times the sphere's volume), the
    density of a site's own images in a lattice plane (per cell face area, times the circle's
    area) and along a lattice row (2 per lattice vector length). The latter two catch sheets and
    chains of images that a long third vector hides from the volume density.
    """
    from pymatgen.core import Lattice

    reduced = Lattice(lattice).get_lll_reduced_lattice().matrix
    volume = abs(float(np.linalg.det(reduced)))
    estimates = [(n_sites / volume * 4.0 / 3.0 * math.pi * cutoff**3, "the density of sites")]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        area = float(np.linalg.norm(np.cross(reduced[a], reduced[b])))
        if area > 0:
            estimates.append((math.pi * cutoff**2 / area, "its periodic images in a lattice plane"))
    for a in range(3):
        count = 2.0 * math.floor(cutoff / float(np.linalg.norm(reduced[a])))
        estimates.append((count, "its periodic images along a lattice vector"))
    return max(estimates)


def neighbour_counts(crystal, cutoff: float) -> np.ndarray:
    """Exact number of neighbours (sites and images, own images included) of each site within ``cutoff`` Å.

    Parameters
    ----------
    crystal : Crystal
        The structure.
    cutoff : float
        Cutoff in Å.

    Returns
    -------
    counts : ndarray of shape (n_sites,), int64
    """
    from vesin import NeighborList

    i, j = NeighborList(cutoff=float(cutoff), full_list=False).compute(
        points=crystal.cart_coords, box=crystal.lattice, periodic=True, quantities="ij"
    )
    n = crystal.num_sites
    return np.bincount(np.asarray(i, np.int64), minlength=n) + np.bincount(np.asarray(j, np.int64), minlength=n)


def check_geometry(crystal, bound: NeighbourBound, index: int | None, backbone_name: str) -> None:
    """Raise :class:`InvalidStructureError` naming sample ``index`` if a site has too many neighbours.

    Parameters
    ----------
    crystal : Crystal
        The structure (already validated by :func:`skdynemb.structures.to_crystal`).
    bound : NeighbourBound
        The backbone's bound (:func:`bound_of`).
    index : int or None
        Global sample index, for the message (the id is the crystal's).
    backbone_name : str
        For the message.

    Raises
    ------
    InvalidStructureError
        With the number of neighbours a site would have had (estimated from densities when that
        estimate already exceeds the bound, so no huge neighbour list is ever built; counted
        exactly otherwise) and the bound.
    """
    limit, r = bound.max_neighbours, bound.cutoff
    estimate, source = _estimate(crystal.lattice, crystal.num_sites, r)
    if estimate > limit:
        raise InvalidStructureError(
            index, crystal.id,
            f"a site would have about {estimate:.0f} neighbours within {backbone_name}'s {r:g} Å cutoff "
            f"(from {source}; at most {limit} allowed, {MAX_DENSITY:g} site/Å³): a cell too small or "
            "atoms collapsed together, not a real crystal; its graph would not fit in memory",
        )
    counts = neighbour_counts(crystal, r)
    site = int(np.argmax(counts)) if len(counts) else 0
    if len(counts) and counts[site] > limit:
        raise InvalidStructureError(
            index, crystal.id,
            f"site {site} would have {int(counts[site])} neighbours within {backbone_name}'s {r:g} Å cutoff "
            f"(at most {limit} allowed, {MAX_DENSITY:g} site/Å³): atoms collapsed together or a cell too "
            "small, not a real crystal; its graph would not fit in memory",
        )
