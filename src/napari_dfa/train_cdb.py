"""CDB (Class-wise Difficulty-Balanced loss, Sinha et al. 2020) with a separate
estimation stage: the difficulty-aware baseline DFA is compared with.

Stage 1 trains with the plain loss on part of the annotations and measures per-class
Dice on the held-out annotated regions; stage 2 retrains (from the same start) on all
annotations with weights ``(1 - Dice_c)^tau`` (dynamic ``tau``, mean 1). Both stages
share the step and time budgets (``stage1_share`` of each for stage 1).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace

import numpy as np
from scipy import ndimage

from napari_dfa.metrics import ConfusionAccumulator
from napari_dfa.model.class_weights import cdb_weights
from napari_dfa.model.losses import LossConfig
from napari_dfa.train import TrainConfig, TrainProgress, TrainResult, fine_tune

__all__ = ["cdb_train", "split_annotations"]


def split_annotations(
    labels: Sequence[np.ndarray], num_classes: int, holdout: float = 0.2, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split annotations into (train, validation) by connected region, per class.

    A class with a single region keeps it for training and has no validation pixels.
    """
    rng = np.random.default_rng(seed)
    regions = []  # (image index, class, component label)
    comps = []
    for i, lab in enumerate(labels):
        lab = np.asarray(lab)
        per_img = np.zeros(lab.shape, np.int32)
        offset = 0
        for c in range(1, num_classes + 1):
            comp, n = ndimage.label(lab == c, structure=np.ones((3, 3)))
            per_img[comp > 0] = comp[comp > 0] + offset
            regions += [(i, c, offset + j) for j in range(1, n + 1)]
            offset += n
        comps.append(per_img)
    val_ids: set[tuple[int, int]] = set()
    for c in range(1, num_classes + 1):
        mine = [(i, r) for i, cc, r in regions if cc == c]
        if len(mine) < 2:
            continue
        n_val = min(max(1, int(round(holdout * len(mine)))), len(mine) - 1)
        for j in rng.choice(len(mine), n_val, replace=False):
            val_ids.add(mine[j])
    train, val = [], []
    for i, lab in enumerate(labels):
        lab = np.asarray(lab)
        is_val = np.zeros(lab.shape, bool)
        for r in {r for (ii, r) in val_ids if ii == i}:
            is_val |= comps[i] == r
        train.append(np.where(is_val, 0, lab).astype(np.uint8))
        val.append(np.where(is_val, lab, 0).astype(np.uint8))
    return train, val


def cdb_train(
    images: Sequence,
    labels: Sequence[np.ndarray],
    class_names: Sequence[str],
    init=None,
    config: TrainConfig | None = None,
    holdout: float = 0.2,
    stage1_share: float = 0.5,
    tau: float | None = None,
    **kw,
) -> Generator[TrainProgress, None, TrainResult]:
    """Two-stage CDB training; yields the progress of both stages (steps continue)."""
    from napari_dfa.predict import predict_image

    cfg = config or TrainConfig()
    k = len(class_names)
    train_lab, val_lab = split_annotations(labels, k, holdout, cfg.seed)
    stage1 = replace(
        cfg,
        steps=max(1, int(cfg.steps * stage1_share)),
        max_seconds=cfg.max_seconds * stage1_share if cfg.max_seconds else None,
        loss=LossConfig(),
    )
    result1 = yield from fine_tune(images, train_lab, class_names, init, stage1, **kw)
    acc = ConfusionAccumulator(k)
    for img, val in zip(images, val_lab):
        if val.any():
            acc.update(predict_image(result1.model, np.asarray(img)), val)
    scores = acc.scores(class_names)
    dice = [d if p else np.nan for d, p in zip(scores.dice, scores.present)]
    if np.isnan(dice).all():
        dice = [0.0] * k
    dice = np.where(np.isnan(dice), np.nanmean(dice), dice)
    weights, tau_used = cdb_weights(dice, tau)
    stage2 = replace(
        cfg,
        steps=max(1, cfg.steps - result1.steps),
        max_seconds=max(cfg.max_seconds - result1.elapsed, 1.0) if cfg.max_seconds else None,
        loss=replace(cfg.loss, class_weights=weights),
    )
    offset = result1.steps
    gen = fine_tune(images, labels, class_names, init, stage2, **kw)
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            result2 = stop.value
            break
        yield replace(ev, step=ev.step + offset, total_steps=cfg.steps, elapsed=ev.elapsed + result1.elapsed)
    summary = dict(result2.summary)
    summary["cdb"] = {
        "stage1_steps": result1.steps,
        "stage1_seconds": round(result1.elapsed, 1),
        "heldout_dice": [float(d) for d in dice],
        "weights": weights,
        "tau": tau_used,
    }
    return replace(
        result2,
        steps=result1.steps + result2.steps,
        elapsed=result1.elapsed + result2.elapsed,
        summary=summary,
    )
