"""New models on a chosen encoder: the compact CNN or any timm model, with optional
initial weights (a local safetensors file, or timm's download for users with internet)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ENCODER_CHOICES", "new_model"]

# offered in the Model dock; the CLI takes any "timm:<name>"
ENCODER_CHOICES = ("compact", "timm:tf_efficientnet_lite0", "timm:tf_efficientnet_lite1", "timm:resnet18")


def new_model(
    class_names: Sequence[str],
    backbone: str = "compact",
    weights: str | Path | None = None,
    **config: Any,
):
    """An untrained :class:`~napari_dfa.model.DFASegmenter` with ``backbone``.

    ``weights`` (a safetensors file for that encoder, or ``"timm"``) initialise the encoder
    strictly; the model then normalises its input as the encoder was pretrained and records
    where the weights came from (``config.encoder_weights``), so fine-tuning keeps such an
    encoder frozen by default.
    """
    from napari_dfa.model.backbone import TIMM_WEIGHTS, encoder_normalisation
    from napari_dfa.model.config import ModelConfig
    from napari_dfa.model.segmenter import DFASegmenter

    if weights is not None and backbone == "compact":
        from napari_dfa.errors import DFAError

        raise DFAError(
            "the compact encoder has no pretrained weights to load; choose a timm encoder "
            "(e.g. timm:tf_efficientnet_lite0) or leave the weights empty"
        )
    if weights is not None:
        norm = encoder_normalisation(backbone)
        if norm is not None:
            config.setdefault("mean", list(norm[0]))
            config.setdefault("std", list(norm[1]))
        from napari_dfa.model.pretrained import weights_provenance

        source = "timm pretrained weights" if str(weights) == TIMM_WEIGHTS else weights_provenance(weights)
        config.setdefault("encoder_weights", source)
    mc = ModelConfig(class_names=list(class_names), backbone=backbone, **config)
    return DFASegmenter(mc, backbone_weights=None if weights is None else str(weights))
