import math

import numpy as np
import pytest

from napari_dfa.metrics import ConfusionAccumulator, dataset_scores


def test_dataset_level_scores_match_hand_computation():
    gt1 = np.array([[1, 1, 2], [2, 0, 3]])
    pr1 = np.array([[1, 2, 2], [2, 3, 1]])
    gt2 = np.array([[1, 0], [2, 2]])
    pr2 = np.array([[1, 1], [1, 2]])
    s = dataset_scores([pr1, pr2], [gt1, gt2], num_classes=3, class_names=["a", "b", "c"])
    # class 1: TP = 1 + 1 = 2, FP = 1 (img1 (1,2) pred 1 gt 3) + 1 (img2 (1,0)) = 2, FN = 1 (img1 (0,1)) = 1
    # class 2: TP = 2 + 1 = 3, FP = 1 (img1 (0,1)), FN = 1 (img2 (1,0)) ; class 3: TP 0, FP 0, FN 1
    assert s.dice[0] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert s.iou[0] == pytest.approx(2 / (2 + 2 + 1))
    assert s.dice[1] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert s.dice[2] == 0.0 and s.support_px == [3, 4, 1]
    assert s.mean_dice == pytest.approx(np.mean(s.dice))
    assert s.n_images == 2
    d = s.to_dict()
    assert set(d) == {"classes", "mean_dice", "mean_iou", "n_images"}
    assert d["classes"]["b"]["support_px"] == 4


def test_mean_is_over_classes_present_in_ground_truth():
    acc = ConfusionAccumulator(3)
    acc.update(np.array([1, 1, 2]), np.array([1, 1, 2]))
    s = acc.scores()
    assert s.present == [True, True, False]
    assert math.isnan(s.dice[2])
    assert s.mean_dice == 1.0


def test_unlabeled_ground_truth_is_ignored_and_shapes_checked():
    acc = ConfusionAccumulator(2)
    acc.update(np.array([2, 2, 1]), np.array([0, 0, 1]))
    assert acc.scores().dice[0] == 1.0
    with pytest.raises(ValueError):
        acc.update(np.zeros(3), np.zeros(4))
