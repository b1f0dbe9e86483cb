import math

import numpy as np
import pytest

from napari_dfa.model.class_weights import (
    annotated_regions,
    cdb_weights,
    effective_number_weights,
    inverse_frequency_weights,
    median_frequency_weights,
)
from napari_dfa.model.loss_presets import LOSSES, loss_config
from napari_dfa.train import TrainConfig, run_to_end
from napari_dfa.train_cdb import split_annotations
from napari_dfa.trainers import start_training


def _labels():
    a = np.zeros((20, 20), np.uint8)
    a[0:10, :] = 1  # 200 px of class 1
    a[12, 0:5] = 2  # two regions of class 2 (10 px)
    a[15, 0:5] = 2
    b = np.zeros((20, 20), np.uint8)
    b[:, 0:10] = 1  # 200 px
    b[18, 10:20] = 3  # one region of class 3 (10 px)
    return [a, b]


def test_inverse_frequency_matches_formula():
    w = inverse_frequency_weights([400, 10, 10])
    raw = np.array([420 / (3 * 400), 420 / (3 * 10), 420 / (3 * 10)])
    assert np.allclose(w, raw / raw.mean())
    assert math.isclose(np.mean(w), 1.0)


def test_median_frequency_matches_formula():
    labs = _labels()
    # f_c = pixels of c / annotated pixels of images containing c
    f1 = 400 / (210 + 210)
    f2 = 10 / 210
    f3 = 10 / 210
    raw = np.median([f1, f2, f3]) / np.array([f1, f2, f3])
    assert np.allclose(median_frequency_weights(labs, 3), raw / raw.mean())


def test_effective_number_counts_regions_not_pixels():
    labs = _labels()
    regions = annotated_regions(labs, 3)
    assert regions.tolist() == [2, 2, 1]
    w = effective_number_weights(regions, beta=0.9)
    raw = (1 - 0.9) / (1 - 0.9 ** np.array([2.0, 2.0, 1.0]))
    assert np.allclose(w, raw / raw.mean())
    assert w[2] > w[0]  # fewer regions -> larger weight
    # with pixel counts the weights would collapse to uniform: the reason we count regions
    assert np.allclose(effective_number_weights([40000, 1000, 1000], beta=0.99), 1.0, atol=1e-3)


def test_cdb_weights_and_dynamic_tau():
    w, tau = cdb_weights([0.9, 0.5, 0.2])
    bias = 0.9 / (0.2 + 0.01)
    assert math.isclose(tau, 2 / (1 + math.exp(-(bias - 1))))
    raw = np.array([0.1, 0.5, 0.8]) ** tau
    assert np.allclose(w, raw / raw.mean())
    w_fixed, t = cdb_weights([0.9, 0.5, 0.2], tau=1.0)
    assert t == 1.0 and np.allclose(w_fixed, np.array([0.1, 0.5, 0.8]) / np.mean([0.1, 0.5, 0.8]))


def test_loss_presets():
    labs = _labels()
    assert loss_config("plain", labs, 3).class_weights is None
    assert loss_config("focal", labs, 3).focal_gamma == 2.0
    la = loss_config("logit_adjust", labs, 3).logit_adjust
    assert la[0] > la[1] and math.isclose(la[1], la[2])  # tau * log pi: frequent class highest
    assert loss_config("inverse_freq", labs, 3).class_weights[2] > 1
    with pytest.raises(ValueError):
        loss_config("nope", labs, 3)
    assert set(LOSSES) >= {"plain", "inverse_freq", "median_freq", "effective_number", "focal", "logit_adjust", "cdb"}


def test_split_annotations_by_region_keeps_every_class_in_training():
    labs = _labels()
    train, val = split_annotations(labs, 3, holdout=0.5, seed=0)
    for t, v, orig in zip(train, val, labs):
        assert not np.any((t > 0) & (v > 0))
        assert np.array_equal(np.where(t > 0, t, v), orig)
    for c in (1, 2, 3):
        assert any((t == c).any() for t in train)
    assert any((v == 2).any() for v in val)  # class 2 has two regions: one held out
    assert not any((v == 3).any() for v in val)  # class 3 has one: kept for training


def test_cdb_runs_both_stages(tmp_path):
    from napari_dfa.data.scribbles import make_scribbles
    from napari_dfa.data.synthetic import CLASS_NAMES, generate_tissue

    s = generate_tissue((128, 128), seed=3)
    scr = make_scribbles(s.labels, 0.05, seed=0)
    cfg = TrainConfig(
        steps=4,
        batch_size=2,
        crop_size=64,
        device="cpu",
        model_overrides=dict(
            backbone_channels=[8, 8, 8, 8], hidden_dim=16, mask_dim=8, num_heads=2, dec_layers=3, ffn_dim=16
        ),
    )
    gen = start_training([s.image], [scr], list(CLASS_NAMES), loss="cdb", config=cfg)
    events = []
    res = run_to_end(gen, events.append)
    info = res.summary["cdb"]
    assert info["stage1_steps"] == 2 and res.steps == 4
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert len(info["weights"]) == 5 and math.isclose(np.mean(info["weights"]), 1.0)
    assert res.summary["train_config"]["loss"]["class_weights"] == info["weights"]
