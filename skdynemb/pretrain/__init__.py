"""Train our own ALIGNN extractor: :func:`pretrain_alignn`.

The checkpoints it writes (``<output_dir>/best``) are official-layout ALIGNN checkpoints that
``skdynemb.backbones.alignn.load`` and ``DynamicEmbeddingTransformer(backbone="alignn",
weights=...)`` read as they are. The ``skdynemb pretrain`` command (:mod:`skdynemb.cli.pretrain`)
is a thin layer over this API.
"""

from skdynemb.pretrain._store import GraphStore
from skdynemb.pretrain._train import PretrainResult, folded_model, pretrain_alignn

__all__ = ["GraphStore", "PretrainResult", "folded_model", "pretrain_alignn"]
