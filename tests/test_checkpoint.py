import json
import pickle

import pytest
import torch

from napari_dfa.checkpoint import load_model, read_config, save_model
from napari_dfa.errors import CheckpointError
from napari_dfa.model import DFASegmenter


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    m = DFASegmenter(tiny_config).eval()
    with torch.no_grad():
        m.focal_bias.bias.add_(torch.tensor([0.3, -0.1, 0.2]))
    return m


def test_round_trip_is_bit_identical(model, tmp_path):
    folder = save_model(model, tmp_path / "m", training={"steps": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(folder)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.config.to_dict() == model.config.to_dict()
    assert loaded.training_summary == {"steps": 3}
    cfg = read_config(folder)
    assert cfg["format_version"] == 1 and cfg["model"]["class_names"] == ["a", "b", "c"]


def test_save_replaces_a_model_folder_but_never_other_files(model, tmp_path):
    save_model(model, tmp_path / "m")
    save_model(model, tmp_path / "m")  # overwrite an existing model folder: fine
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a napari-dfa model folder"):
        save_model(model, other)
    assert (other / "holiday.jpg").read_bytes() == b"x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_pickle_files_are_refused(model, tmp_path):
    pt = tmp_path / "model.pt"
    torch.save(model.state_dict(), pt)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_model(pt)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "weights.pth").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(folder)
    # a pickle renamed to model.safetensors inside a valid-looking folder
    good = save_model(model, tmp_path / "m")
    (good / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(good)


def test_truncated_weights_are_refused(model, tmp_path):
    folder = save_model(model, tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(folder)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: c.update(format="something-else"), "not a napari-dfa model config"),
        (lambda c: c.update(format_version=99), "newer than this napari-dfa"),
        (lambda c: c["model"].pop("class_names"), "missing the field model.class_names"),
        (lambda c: c["model"].update(hidden_dim="__import__('os')"), "model.hidden_dim"),
        (lambda c: c["model"].update(prior=[0.5, 0.5]), "model.prior"),
        (lambda c: c["model"].update(backbone="timm:../../evil"), "model.backbone"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(model, tmp_path, mutate, match):
    folder = save_model(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    mutate(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=match):
        load_model(folder)


def test_weights_of_another_model_are_refused(model, tiny_config, tmp_path):
    folder = save_model(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["class_names"] = ["a", "b", "c", "d"]
    cfg["model"]["class_colors"] += ["#000000"]
    cfg["model"]["prior"] = [0.25] * 4
    cfg["model"]["label_values"] = [1, 2, 3, 4]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match its config.json"):
        load_model(folder)


def test_missing_folder_and_other_format(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path / "x")
