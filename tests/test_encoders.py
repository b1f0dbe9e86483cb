"""New models on a chosen encoder; frozen pretrained encoders in fine-tuning; the
class-balanced sampling choice of the trainers."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_dfa.data.synthetic import generate_tissue
from napari_dfa.errors import DFAError
from napari_dfa.model.encoders import new_model
from napari_dfa.train import TrainConfig, run_to_end
from napari_dfa.trainers import start_training

LITE0 = "timm:tf_efficientnet_lite0"
SMALL = dict(hidden_dim=32, mask_dim=16, num_heads=2, dec_layers=2, ffn_dim=64)


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory):
    """A (random) weights file for the tf_efficientnet_lite0 encoder body."""
    body = new_model(["a", "b"], LITE0, **SMALL).backbone.body
    state = {k: v.detach().clone().contiguous() + 0.01 for k, v in body.state_dict().items() if v.is_floating_point()}
    state.update({k: v for k, v in body.state_dict().items() if not v.is_floating_point()})
    path = tmp_path_factory.mktemp("enc") / "lite0.safetensors"
    save_file(state, str(path))
    return path, state


@pytest.fixture(scope="module")
def tissue():
    t = generate_tissue((128, 128), seed=3, difficulty=0.0)
    return [t.image], [t.labels]


def test_new_model_loads_encoder_weights_and_their_normalisation(lite0_weights):
    path, state = lite0_weights
    model = new_model(["tumor", "stroma"], LITE0, path, **SMALL)
    loaded = model.backbone.body.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert model.config.encoder_weights == path.name
    assert model.config.mean == [0.5, 0.5, 0.5] and model.config.std == [0.5, 0.5, 0.5]
    plain = new_model(["tumor", "stroma"], LITE0, **SMALL)
    assert plain.config.encoder_weights == "" and plain.config.mean != [0.5, 0.5, 0.5]


def test_compact_encoder_refuses_weights(lite0_weights):
    with pytest.raises(DFAError, match="compact encoder has no pretrained weights"):
        new_model(["a", "b"], "compact", lite0_weights[0])


def _train(images, labels, **kw):
    cfg = TrainConfig(steps=2, batch_size=2, crop_size=64, device="cpu", **kw)
    names = [f"class_{i}" for i in range(1, int(max(lab.max() for lab in labels)) + 1)]
    return run_to_end(start_training(images, labels, names, loss="plain", config=cfg))


def test_pretrained_encoder_is_frozen_by_default_and_trainable_on_request(lite0_weights, tissue):
    path, state = lite0_weights
    overrides = {"backbone": LITE0, **SMALL}
    frozen = _train(*tissue, backbone_weights=str(path), model_overrides=overrides)
    assert frozen.summary["encoder_frozen"] is True
    body = frozen.model.backbone.body.state_dict()
    assert all(torch.equal(body[k], v) for k, v in state.items())  # weights and BN statistics kept
    trained = _train(*tissue, backbone_weights=str(path), model_overrides=overrides, freeze_encoder=False)
    assert trained.summary["encoder_frozen"] is False
    body = trained.model.backbone.body.state_dict()
    assert any(not torch.equal(body[k], v) for k, v in state.items())


@pytest.mark.parametrize(
    ("loss", "asked", "expected"),
    [
        ("plain", None, True),
        ("focal", None, True),
        ("inverse_freq", None, False),
        ("logit_adjust", None, False),
        ("inverse_freq", True, True),
        ("plain", False, False),
    ],
)
def test_reweighting_losses_do_not_also_balance_the_crops(tissue, loss, asked, expected):
    images, labels = tissue
    cfg = TrainConfig(
        steps=1,
        batch_size=2,
        crop_size=64,
        device="cpu",
        class_balanced=asked,
        model_overrides=dict(backbone_channels=[8, 8, 8, 8], backbone_blocks=[1, 1, 1, 1], **SMALL),
    )
    names = [f"class_{i}" for i in range(1, int(labels[0].max()) + 1)]
    result = run_to_end(start_training(images, labels, names, loss=loss, config=cfg))
    assert result.summary["class_balanced"] is expected
    assert np.isfinite(result.final_loss)
