"""The DFA model: a Mask2Former-style segmenter with a learnable per-class attention bias."""

from napari_dfa.model.config import BIAS_INITS, BIAS_PLACEMENTS, ModelConfig
from napari_dfa.model.focal_bias import FocalBias, frequency_prior, initial_bias
from napari_dfa.model.segmenter import DFASegmenter, SegmenterOutput

__all__ = [
    "BIAS_INITS",
    "BIAS_PLACEMENTS",
    "DFASegmenter",
    "FocalBias",
    "ModelConfig",
    "SegmenterOutput",
    "frequency_prior",
    "initial_bias",
]
