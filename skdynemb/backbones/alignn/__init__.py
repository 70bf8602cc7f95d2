"""ALIGNN (Choudhary & DeCost, npj Comput. Mater. 7, 185, 2021) in pure PyTorch, as a stage extractor.

Sub-modules: :mod:`.config` (hyper-parameters, norm choice), :mod:`.layers` and :mod:`.model`
(the network), :mod:`.checkpoints` (read, verify, load, save), :mod:`.fetch` (official weights
into the cache), :mod:`.names` (official model names), :mod:`.graphs` (the graph rules: crystal ->
atom graph + line graph), :mod:`.backbone` (the stage extractor).

A new variant is a config value (e.g. ``ALIGNNConfig(norm="layer")``) or a graph rule
(:class:`~skdynemb.backbones.alignn.graphs.KNearestGraph`), saved in its checkpoint, plus one line in
``skdynemb.backbones._REGISTRY``.
"""

from skdynemb.backbones.alignn.backbone import AlignnBackbone, load
from skdynemb.backbones.alignn.checkpoints import (infer_config, load_checkpoint, save_checkpoint,
                                                   save_derived_checkpoint, verify_state_dict)
from skdynemb.backbones.alignn.config import ALIGNNConfig
from skdynemb.backbones.alignn.fetch import cache_dir
from skdynemb.backbones.alignn.model import ALIGNN, AlignnStages, cgcnn_feature_table
from skdynemb.backbones.alignn.names import OFFICIAL_MODELS, official_names

__all__ = [
    "ALIGNN", "ALIGNNConfig", "AlignnBackbone", "AlignnStages", "OFFICIAL_MODELS", "cache_dir",
    "cgcnn_feature_table", "infer_config", "load", "load_checkpoint", "official_names", "save_checkpoint",
    "save_derived_checkpoint", "verify_state_dict",
]
