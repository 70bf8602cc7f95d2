"""Train our own ALIGNN extractor: :func:`pretrain_alignn` (API) and ``skdynemb pretrain`` (:func:`add_cli`).

The checkpoints it writes (``<output_dir>/best``) are official-layout ALIGNN checkpoints that
``skdynemb.backbones.alignn.load`` and ``DynamicEmbeddingTransformer(backbone="alignn",
weights=...)`` read as they are. Names are imported on first use, so registering the
subcommand (``skdynemb.pretrain:add_cli``) does not import torch.
"""

from skdynemb._lazy import lazy_exports

_EXPORTS = {
    "add_cli": "skdynemb.pretrain._cli",
    "GraphStore": "skdynemb.pretrain._store",
    "PretrainResult": "skdynemb.pretrain._train",
    "folded_model": "skdynemb.pretrain._train",
    "pretrain_alignn": "skdynemb.pretrain._train",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
