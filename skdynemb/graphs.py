"""Deprecated: ALIGNN's graph rules moved to :mod:`skdynemb.backbones.alignn.graphs` in 0.2.

Importing this module still works and gives the same objects, with a :class:`FutureWarning`;
it is removed in 0.3.
"""

import warnings

from skdynemb.backbones.alignn.graphs import (
    BOND_TOL,
    AlignnBatch,
    AlignnGraph,
    KNearestGraph,
    assemble_graph,
    batch_graphs,
    bond_cosines,
    line_graph,
    weighted_line_graph,
)

__all__ = [
    "BOND_TOL", "AlignnBatch", "AlignnGraph", "KNearestGraph", "assemble_graph", "batch_graphs", "bond_cosines",
    "line_graph", "weighted_line_graph",
]

warnings.warn(
    "skdynemb.graphs moved to skdynemb.backbones.alignn.graphs in 0.2; removed in 0.3",
    FutureWarning,
    stacklevel=2,
)
