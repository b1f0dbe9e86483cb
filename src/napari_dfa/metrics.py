"""Dataset-level Dice and IoU.

TP/FP/FN are summed per class over all images of a dataset, then Dice and IoU are
computed per class; the mean is over the classes present in the ground truth.
Unlabeled ground-truth pixels (``0``) are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConfusionAccumulator", "SegmentationScores", "dataset_scores"]


@dataclass
class SegmentationScores:
    class_names: list[str]
    dice: list[float]
    iou: list[float]
    support_px: list[int]
    n_images: int
    present: list[bool] = field(default_factory=list)

    @property
    def mean_dice(self) -> float:
        vals = [d for d, p in zip(self.dice, self.present) if p]
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def mean_iou(self) -> float:
        vals = [d for d, p in zip(self.iou, self.present) if p]
        return float(np.mean(vals)) if vals else float("nan")

    def to_dict(self) -> dict:
        return {
            "classes": {
                name: {"dice": d, "iou": i, "support_px": int(s)}
                for name, d, i, s in zip(self.class_names, self.dice, self.iou, self.support_px)
            },
            "mean_dice": self.mean_dice,
            "mean_iou": self.mean_iou,
            "n_images": self.n_images,
        }

    def table(self) -> str:
        """A small plain-text table for terminals."""
        width = max(8, *(len(n) for n in self.class_names))
        rows = [f"{'class':<{width}}  {'dice':>6}  {'iou':>6}  {'support':>10}"]
        for n, d, i, s in zip(self.class_names, self.dice, self.iou, self.support_px):
            rows.append(f"{n:<{width}}  {d:6.3f}  {i:6.3f}  {s:>10d}")
        rows.append(f"{'mean':<{width}}  {self.mean_dice:6.3f}  {self.mean_iou:6.3f}")
        return "\n".join(rows)


class ConfusionAccumulator:
    """Accumulates per-class TP/FP/FN over images (labels ``1..K``, ``0`` ignored)."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.tp = np.zeros(num_classes, np.int64)
        self.fp = np.zeros(num_classes, np.int64)
        self.fn = np.zeros(num_classes, np.int64)
        self.n_images = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground-truth shape {target.shape}")
        keep = target > 0
        p = pred[keep].astype(np.int64) - 1
        t = target[keep].astype(np.int64) - 1
        if t.size and (t.max() >= self.k):
            raise ValueError(f"ground truth has label {t.max() + 1} but only {self.k} classes")
        p = np.clip(p, -1, self.k - 1)
        valid_p = p >= 0
        cm = np.bincount(t[valid_p] * self.k + p[valid_p], minlength=self.k * self.k).reshape(self.k, self.k)
        tp = np.diag(cm)
        self.tp += tp
        self.fp += cm.sum(0) - tp
        self.fn += np.bincount(t, minlength=self.k) - tp
        self.n_images += 1

    def scores(self, class_names: Sequence[str] | None = None) -> SegmentationScores:
        names = list(class_names) if class_names is not None else [str(i + 1) for i in range(self.k)]
        support = self.tp + self.fn
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(support + self.fp > 0, 2 * self.tp / (2 * self.tp + self.fp + self.fn), np.nan)
            iou = np.where(support + self.fp > 0, self.tp / (self.tp + self.fp + self.fn), np.nan)
        return SegmentationScores(
            class_names=names,
            dice=[float(x) for x in dice],
            iou=[float(x) for x in iou],
            support_px=[int(x) for x in support],
            n_images=self.n_images,
            present=[bool(s > 0) for s in support],
        )


def dataset_scores(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], num_classes: int, class_names=None
) -> SegmentationScores:
    """Dice/IoU of a list of predictions against ground truths (dataset level)."""
    acc = ConfusionAccumulator(num_classes)
    for p, t in zip(preds, targets):
        acc.update(p, t)
    return acc.scores(class_names)
