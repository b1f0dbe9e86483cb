"""One entry point for every training recipe: the DFA default and the baselines."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace

import numpy as np

from napari_dfa.model.loss_presets import LOSSES, loss_config
from napari_dfa.train import TrainConfig, TrainProgress, TrainResult, fine_tune

__all__ = ["LOSSES", "REWEIGHTING_LOSSES", "start_training"]

# losses that re-weight classes themselves: class-balanced crop sampling on top would
# re-weight twice, so it is off for them unless asked for
REWEIGHTING_LOSSES = ("inverse_freq", "median_freq", "effective_number", "logit_adjust", "cdb")


def start_training(
    images: Sequence,
    labels: Sequence[np.ndarray],
    class_names: Sequence[str],
    loss: str = "plain",
    init=None,
    config: TrainConfig | None = None,
    **kw,
) -> Generator[TrainProgress, None, TrainResult]:
    """A training generator for ``loss`` (see :data:`LOSSES`); labels use 0 = unlabeled.

    The model side (DFA bias placement/init, frozen or learned) is set in ``config``.
    ``config.class_balanced=None`` samples crops class-balanced except for
    :data:`REWEIGHTING_LOSSES`.
    """
    cfg = config or TrainConfig()
    if cfg.class_balanced is None:
        cfg = replace(cfg, class_balanced=loss not in REWEIGHTING_LOSSES)
    if loss == "cdb":
        from napari_dfa.train_cdb import cdb_train

        return cdb_train(images, labels, class_names, init, cfg, **kw)
    cfg = replace(cfg, loss=loss_config(loss, labels, len(class_names)))
    return fine_tune(images, labels, class_names, init, cfg, **kw)
