"""Models: backbone split, LSTS sampler, fusion, R-FCN head and the video detector."""

from .backbone import ResNetBackbone, build_backbone, low_split_index
from .config import ModelConfig, cpu_small_config, paper_config, tiny_config
from .detector import (
    KeyState,
    StreamingSession,
    VideoDetector,
    build_detector,
    key_frame_indices,
)
from .flownet import FlowNetSmall, warp
from .fusion import Low2High, QualityNet
from .head import HeadConfig, RFCNHead
from .lsts import LSTSAlign, LSTSOffsets
from .srfu_dfa import DFA, SRFU
from .variants import VARIANTS, Variant, get_variant

__all__ = [
    "DFA", "SRFU", "VARIANTS", "Variant", "get_variant", "FlowNetSmall", "HeadConfig", "KeyState", "LSTSAlign", "LSTSOffsets", "Low2High",
    "ModelConfig", "QualityNet", "RFCNHead", "ResNetBackbone", "StreamingSession",
    "VideoDetector", "build_backbone", "build_detector", "cpu_small_config", "key_frame_indices",
    "low_split_index", "paper_config", "tiny_config", "warp",
]

# Bumped whenever the model code computes something else for the same config (a stamp keyed
# on the config alone would reuse a run trained by the old code). 2: the official quality
# net (no activations), res5a dilated, low2high on the pre-ReLU res4b3 sum, RPN target stds
# and cross-border anchors ignored.
MODEL_CODE_VERSION = 2
