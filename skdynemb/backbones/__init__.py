"""Registry of pretrained structure-aware backbones.

Adding a backbone = one module with a ``load(weights=None) -> Backbone`` function and one line
in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from skdynemb._optional import needs_extra
from skdynemb.backbones._checks import check_statistics, naming_the_file
from skdynemb.backbones.base import Backbone, StageOutput

# name -> (module, default weights passed to its ``load``; None = the module's own default)
_REGISTRY: dict[str, tuple[str, str | None]] = {
    "cgcnn-mp-eform": ("skdynemb.backbones.cgcnn", None),
    "chgnet": ("skdynemb.backbones.chgnet", None),
    # CHGNet's versions shipped in the chgnet 0.4.2 wheel, by CHGNet's own model names ("chgnet" = 0.3.0)
    "chgnet-0.3.0": ("skdynemb.backbones.chgnet", "0.3.0"),
    "chgnet-0.2.0": ("skdynemb.backbones.chgnet", "0.2.0"),
    "chgnet-r2scan": ("skdynemb.backbones.chgnet", "r2scan"),
    # SevenNet checkpoints shipped in the sevenn 0.13 wheel (sha256-pinned; the sevenn extra)
    "sevenn-0": ("skdynemb.backbones.sevenn", "sevenn-0"),
    "sevenn-0-22may2024": ("skdynemb.backbones.sevenn", "sevenn-0-22may2024"),
    "sevenn-l3i5": ("skdynemb.backbones.sevenn", "sevenn-l3i5"),
    "sevenn-mf-0": ("skdynemb.backbones.sevenn", "sevenn-mf-0"),  # PBE fidelity
    "alignn": ("skdynemb.backbones.alignn", None),
    # our CPU-sized ALIGNN trained on MP formation energy (see skdynemb/data/alignn-mp-eform/MODEL_CARD.md)
    "alignn-mp-eform": (
        "skdynemb.backbones.alignn", str(Path(__file__).resolve().parents[1] / "data" / "alignn-mp-eform")
    ),
    # the official full-size ALIGNN-FF (JARVIS-DFT energies + forces; weights from the PyPI wheel alignn==2023.6.20)
    "alignn-ff-wt01": ("skdynemb.backbones.alignn", "alignnff_wt01"),
    "alignn-ff-wt1": ("skdynemb.backbones.alignn", "alignnff_wt1"),
    "alignn-ff-wt10": ("skdynemb.backbones.alignn", "alignnff_wt10"),
    "alignn-ff": ("skdynemb.backbones.alignn", "alignnff_wt10"),  # measures best downstream: the default backbone
    # the same weights on the tie-complete graph rule (equal rows for equivalent atoms; results/symmetry.md)
    "alignn-ff-tie-complete": ("skdynemb.backbones.alignn.tie_complete", "alignnff_wt10"),
    "alignn-ff-wt10-tie-complete": ("skdynemb.backbones.alignn.tie_complete", "alignnff_wt10"),
}


def available_backbones() -> list[str]:
    """Names accepted by :func:`load_backbone` (and ``DynamicEmbeddingTransformer(backbone=...)``).

    Returns
    -------
    names : list of str
        The registered backbone names, sorted.
    """
    return sorted(_REGISTRY)


def register_backbone(name: str, module: str, default_weights: str | None = None) -> None:
    """Make ``module.load(weights)`` available under ``name``.

    Parameters
    ----------
    name : str
        The backbone's name (replaces a registered one of the same name).
    module : str
        Importable module with a ``load(weights=None) -> Backbone`` function.
    default_weights : str, optional
        What ``load`` gets when :func:`load_backbone` is given no weights (None: the module's own
        default).
    """
    _REGISTRY[name] = (module, default_weights)


def load_backbone(name: str, weights: str | Path | None = None, device: str = "cpu") -> Backbone:
    """Load backbone ``name`` (optionally from ``weights``) onto ``device`` in eval mode.

    A weights file that cannot be read raises an error naming it; normalisation statistics no
    trained network can hold (a non-positive batch-norm variance) are rejected by name.

    Parameters
    ----------
    name : str
        A registered name (:func:`available_backbones`).
    weights : str or Path, optional
        Weights to load instead of the backbone's default (a file, or a name its module knows).
    device : str, default="cpu"
        Torch device the network is moved to.

    Returns
    -------
    backbone : Backbone
        The network in eval mode on ``device``.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {available_backbones()}")
    module_name, default = _REGISTRY[name]
    with needs_extra(f"the {name!r} backbone"):  # e.g. chgnet: pip install "skdynemb[chgnet]"
        module = importlib.import_module(module_name)
    source = weights if weights is not None else default
    with naming_the_file(source):
        backbone = module.load(source)
    check_statistics(backbone.module, source if source is not None else name)
    backbone.module.eval()
    return backbone.to(device)


__all__ = ["Backbone", "StageOutput", "available_backbones", "load_backbone", "register_backbone"]
