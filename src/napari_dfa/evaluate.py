"""Evaluating a model on labelled images (dataset-level Dice/IoU)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_dfa.errors import InputError
from napari_dfa.metrics import ConfusionAccumulator, SegmentationScores

__all__ = ["evaluate_arrays", "evaluate_pairs", "ground_truth_to_internal"]


def ground_truth_to_internal(gt: np.ndarray, label_values: list[int], ignore_index: int | None) -> np.ndarray:
    """File ground truth -> internal classes 1..K (0 = ignored) using the model's values."""
    lut = np.full(256, 255, np.uint8)
    for k, v in enumerate(label_values, start=1):
        lut[v] = k
    if ignore_index is not None:
        lut[ignore_index] = 0
    gt = np.asarray(gt)
    if gt.size and (gt.min() < 0 or gt.max() > 255):
        raise InputError("ground-truth label values must be in 0..255")
    out = lut[gt.astype(np.int64)]
    if (out == 255).any():
        bad = sorted(set(np.unique(gt[out == 255]).tolist()))[:5]
        raise InputError(
            f"ground truth has label value(s) {bad} that the model does not know "
            f"(its classes use {label_values}); check --ignore-index or the label files"
        )
    return out


def evaluate_arrays(model, pairs: Iterable[tuple[np.ndarray, np.ndarray]], ignore_index: int | None = 0):
    """Scores of ``model`` on ``(image, ground truth in file values)`` pairs."""
    from napari_dfa.predict import predict_image

    cfg = model.config
    acc = ConfusionAccumulator(cfg.num_classes)
    for image, gt in pairs:
        target = ground_truth_to_internal(gt, cfg.label_values, ignore_index)
        if target.shape != image.shape[:2]:
            raise InputError(f"ground truth shape {target.shape} differs from image shape {image.shape[:2]}")
        acc.update(predict_image(model, image), target)
    return acc.scores(cfg.class_names)


def evaluate_pairs(model, images: str, labels: str, ignore_index: int | None = 0) -> SegmentationScores:
    """Scores of ``model`` on image/label files paired by stem."""
    from napari_dfa.io.files import pair_by_stem, read_image, read_labels

    pairs = ((read_image(i), read_labels(lab)) for i, lab in pair_by_stem(images, labels))
    return evaluate_arrays(model, pairs, ignore_index)
