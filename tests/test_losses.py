import pytest
import torch
import torch.nn.functional as F

from napari_dfa.model.losses import (
    LossConfig,
    dice_loss,
    pixel_ce,
    sample_points,
    segmentation_loss,
)


def test_unlabeled_pixels_do_not_contribute():
    torch.manual_seed(0)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:4, 2:6] = 1
    target[0, 6, :] = 2
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    loss = segmentation_loss([logits], target)
    loss.backward()
    grad = logits.grad[0].abs().sum(0)
    assert torch.all(grad[target[0] == 0] == 0)
    assert torch.all(grad[target[0] > 0] > 0)
    # changing logits where unlabeled leaves the loss unchanged
    other = logits.detach().clone()
    other[:, :, target[0] == 0] = torch.randn_like(other[:, :, target[0] == 0]) * 10
    assert torch.allclose(segmentation_loss([other], target), loss.detach())


def test_no_annotation_gives_zero_loss_with_gradient_path():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = segmentation_loss([logits], torch.zeros(1, 4, 4, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_pixels():
    torch.manual_seed(1)
    logits = torch.randn(50, 4)
    target = torch.randint(0, 4, (50,))
    assert torch.allclose(pixel_ce(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    assert pixel_ce(logits, target, gamma=2.0) < pixel_ce(logits, target, gamma=0.0)


def test_class_weights_follow_cross_entropy_weighting():
    torch.manual_seed(2)
    logits = torch.randn(40, 3)
    target = torch.randint(0, 3, (40,))
    w = torch.tensor([0.5, 1.0, 3.0])
    assert torch.allclose(pixel_ce(logits, target, w), F.cross_entropy(logits, target, weight=w))


def test_dice_loss_perfect_and_wrong():
    target = torch.tensor([0, 0, 1, 1, 2])
    perfect = F.one_hot(target, 3).float()
    assert dice_loss(perfect, target, eps=0.0).item() == pytest.approx(0.0, abs=1e-6)
    wrong = F.one_hot((target + 1) % 3, 3).float()
    assert dice_loss(wrong, target, eps=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_logit_adjustment_shifts_logits():
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, dtype=torch.long)  # class 1 (index 0) everywhere
    plain = segmentation_loss([logits], target, LossConfig(dice_weight=0.0))
    adjusted = segmentation_loss([logits], target, LossConfig(dice_weight=0.0, logit_adjust=[2.0, 0.0]))
    assert adjusted < plain  # the adjustment favours class index 0 during training


def test_deep_supervision_averages_layers():
    target = torch.ones(1, 4, 4, dtype=torch.long)
    good = torch.tensor([5.0, -5.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    bad = -good
    l_good = segmentation_loss([good], target)
    l_bad = segmentation_loss([bad], target)
    assert segmentation_loss([good, bad], target) == pytest.approx(((l_good + l_bad) / 2).item())


def test_sample_points_pick_annotated_pixels_only():
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[0, 3, 4] = 2
    target[0, 10, 1:9] = 1
    target[1, 5:10, 5:10] = 3
    pts, labels = sample_points(target, num_points=12, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (2, 12, 2) and labels.shape == (2, 12)
    # image 0 has 9 annotated pixels: all taken, 3 padding entries with label 0
    assert (labels[0] > 0).sum() == 9 and (labels[1] > 0).sum() == 12
    # points map back to the pixel they came from
    xs = ((pts[..., 0] + 1) / 2 * 16 - 0.5).round().long()
    ys = ((pts[..., 1] + 1) / 2 * 16 - 0.5).round().long()
    for b in range(2):
        keep = labels[b] > 0
        assert torch.equal(target[b, ys[b, keep], xs[b, keep]], labels[b, keep])
