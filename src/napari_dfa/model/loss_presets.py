"""Named loss configurations: the DFA default and the class-imbalance baselines.

``loss_config(name, labels, K)`` turns a baseline name into a :class:`LossConfig` whose
class weights / logit offsets are computed from the user's annotations, so every
baseline works in the sparse-scribble setting too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_dfa.model.class_weights import (
    annotated_regions,
    effective_number_weights,
    inverse_frequency_weights,
    median_frequency_weights,
)
from napari_dfa.model.focal_bias import frequency_prior
from napari_dfa.model.losses import LossConfig

__all__ = ["LOSSES", "loss_config"]

LOSSES = ("plain", "inverse_freq", "median_freq", "effective_number", "focal", "logit_adjust", "cdb")


def loss_config(
    name: str,
    labels: Sequence[np.ndarray],
    num_classes: int,
    beta: float = 0.99,
    gamma: float = 2.0,
    tau: float = 1.0,
) -> LossConfig:
    """The :class:`LossConfig` of a named loss, with weights from ``labels`` (0 = unlabeled).

    ``cdb`` returns the plain loss: its weights come from a first training stage
    (:mod:`napari_dfa.train_cdb`).
    """
    counts = np.zeros(num_classes, np.int64)
    for lab in labels:
        counts += np.bincount(np.asarray(lab).ravel(), minlength=num_classes + 1)[1 : num_classes + 1]
    if name in ("plain", "cdb"):
        return LossConfig()
    if name == "inverse_freq":
        return LossConfig(class_weights=inverse_frequency_weights(counts))
    if name == "median_freq":
        return LossConfig(class_weights=median_frequency_weights(labels, num_classes))
    if name == "effective_number":
        return LossConfig(class_weights=effective_number_weights(annotated_regions(labels, num_classes), beta))
    if name == "focal":
        return LossConfig(focal_gamma=gamma)
    if name == "logit_adjust":
        prior = frequency_prior(counts)
        return LossConfig(logit_adjust=[tau * math.log(p) for p in prior])
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
