"""ALIGNN checkpoints run on the tie-complete graph rule (registry names ``*-tie-complete``).

The official k-nearest rule cuts a shell of equidistant neighbours at the k-th one in an arbitrary
order, so symmetry-equivalent atoms can get different rows;
:class:`~skdynemb.backbones.alignn.graphs.TieCompleteGraph` keeps such shells whole. This module
loads a checkpoint exactly as :func:`skdynemb.backbones.alignn.load` does and swaps its graph rule
for the tie-complete one with the checkpoint's own cutoff, k and canonization, so
``load_backbone("alignn-ff-tie-complete")`` is ALIGNN-FF with complete shells. The official weights
were trained on the official rule: ``benchmarks/results/symmetry.md`` measures what the swap does to
their energies, to the rows and downstream.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from skdynemb.backbones.alignn.backbone import AlignnBackbone
from skdynemb.backbones.alignn.backbone import load as load_official_rule
from skdynemb.backbones.alignn.graphs import TieCompleteGraph

#: The suffix of the backbone's name (so of its fingerprint) under the tie-complete rule.
SUFFIX = "+tie-complete"


def load(weights: str | Path | None = None, precision: str = "fp32", shell_tolerance: float = 1e-3) -> AlignnBackbone:
    """An :class:`~skdynemb.backbones.alignn.backbone.AlignnBackbone` from ``weights`` on the
    tie-complete graph rule.

    Parameters
    ----------
    weights : str or Path
        As :func:`skdynemb.backbones.alignn.load` (a checkpoint path or an official model name).
    precision : {"fp32", "tf32", "bf16"}
        As :func:`skdynemb.backbones.alignn.load`.
    shell_tolerance : float
        Å beyond a site's k-th nearest distance within which neighbours still belong to its shell
        (:class:`~skdynemb.backbones.alignn.graphs.TieCompleteGraph`).

    Returns
    -------
    AlignnBackbone
        Named ``<official name>+tie-complete``; its ``rule`` is the tie-complete rule.
    """
    backbone = load_official_rule(weights, precision)
    trained = backbone.rule
    rule = TieCompleteGraph(trained.cutoff, trained.max_neighbors, trained.canonize, shell_tolerance)
    return dataclasses.replace(backbone, name=backbone.name + SUFFIX, rule=rule)
