import json
import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import zarr

from napari_dfa.cli import main
from napari_dfa.data.scribbles import make_scribbles
from napari_dfa.data.synthetic import generate_tissue

FAST = ["--steps", "3", "--batch-size", "2", "--crop-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for sub in ("images", "scribbles", "masks", "binary"):
        (root / sub).mkdir()
    for i in range(2):
        s = generate_tissue((96, 128), seed=i)
        iio.imwrite(root / "images" / f"img{i}.png", s.image)
        iio.imwrite(root / "masks" / f"img{i}.png", s.labels)
        iio.imwrite(root / "scribbles" / f"img{i}.png", make_scribbles(s.labels, 0.03, seed=i))
        # a fully annotated binary mask where 0 = background is a class
        iio.imwrite(root / "binary" / f"img{i}.png", (s.labels == 4).astype(np.uint8))
    return root


def test_train_then_evaluate_then_predict(dataset, tmp_path, capsys):
    model = tmp_path / "model"
    rc = main(
        [
            "train",
            "--images",
            str(dataset / "images"),
            "--labels",
            str(dataset / "scribbles"),
            "--classes",
            "stroma,tumor,necrosis,lymphocytes,mucin",
            "--out",
            str(model),
            *FAST,
        ]
    )
    assert rc == 0
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["model"]["class_names"][0] == "stroma" and cfg["training"]["steps"] == 3
    # the shipped model was pretrained with query placement; fine-tuning uses the default (key)
    assert cfg["model"]["bias_placement"] == "key"

    out_json = tmp_path / "scores.json"
    rc = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--images",
            str(dataset / "images"),
            "--labels",
            str(dataset / "masks"),
            "--json",
            str(out_json),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    scores = json.loads(out_json.read_text())
    assert set(scores) == {"classes", "mean_dice", "mean_iou", "n_images"}
    assert scores["n_images"] == 2 and set(scores["classes"]) == {"stroma", "tumor", "necrosis", "lymphocytes", "mucin"}
    assert all(0 <= v["dice"] <= 1 for v in scores["classes"].values() if v["dice"] == v["dice"])
    assert "mean" in capsys.readouterr().out

    out_png = tmp_path / "pred.png"
    rc = main(
        [
            "predict",
            "--model",
            str(model),
            str(dataset / "images" / "img0.png"),
            "--out",
            str(out_png),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    pred = iio.imread(out_png)
    assert pred.shape == (96, 128) and set(np.unique(pred)) <= {1, 2, 3, 4, 5}


def test_ignore_index_none_predicts_in_the_training_label_values(dataset, tmp_path):
    model = tmp_path / "binary_model"
    rc = main(
        [
            "train",
            "--images",
            str(dataset / "images"),
            "--labels",
            str(dataset / "binary"),
            "--ignore-index",
            "none",
            "--classes",
            "background,lymphocytes",
            "--out",
            str(model),
            *FAST,
        ]
    )
    assert rc == 0
    assert json.loads((model / "config.json").read_text())["model"]["label_values"] == [0, 1]
    out_png = tmp_path / "pred.png"
    assert main(["predict", "--model", str(model), str(dataset / "images" / "img0.png"), "--out", str(out_png)]) == 0
    assert set(np.unique(iio.imread(out_png))) <= {0, 1}
    out_json = tmp_path / "s.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--images",
                str(dataset / "images"),
                "--labels",
                str(dataset / "binary"),
                "--ignore-index",
                "none",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    assert json.loads(out_json.read_text())["classes"]["background"]["support_px"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--images", "/nonexistent", "--labels", "/nonexistent", "--out", "x"], "does not exist"),
        (["predict", "--model", "/nonexistent", "a.png", "--out", "b.png"], "does not exist"),
        (["train", "--images", "IMG", "--labels", "MASKS", "--classes", "a,b", "--out", "OUT"], "only 2 class"),
        (["train", "--images", "IMG", "--labels", "MASKS", "--classes", "a,,b", "--out", "OUT"], "--classes"),
        (["train", "--images", "IMG", "--labels", "MASKS", "--ignore-index", "7", "--out", "OUT"], "ignore-index"),
        (["train", "--images", "IMG", "--labels", "MASKS", "--device", "cuda", "--out", "OUT"], "CUDA"),
    ],
)
def test_user_mistakes_give_one_clear_line(dataset, tmp_path, capsys, argv, message):
    argv = [
        a.replace("IMG", str(dataset / "images"))
        .replace("MASKS", str(dataset / "masks"))
        .replace("OUT", str(tmp_path / "m"))
        for a in argv
    ]
    import torch

    if message == "CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("napari-dfa: error:") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_pickle_model_is_refused(tmp_path, capsys, dataset):
    pt = tmp_path / "model.pt"
    pt.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    assert (
        main(["predict", "--model", str(pt), str(dataset / "images" / "img0.png"), "--out", str(tmp_path / "o.png")])
        == 2
    )
    assert "never unpickles" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_predict_and_evaluate_use_the_shipped_model_by_default(dataset, tmp_path, capsys):
    from napari_dfa.sample import load_default_model

    out = tmp_path / "pred.zarr"
    assert main(["predict", str(dataset / "images" / "img0.png"), "--out", str(out), "--device", "cpu"]) == 0
    labels = zarr.open_group(str(out), mode="r")["labels/0"][:]
    shipped = load_default_model()
    assert labels.shape == iio.imread(dataset / "images" / "img0.png").shape[:2]
    assert set(np.unique(labels)) <= set(shipped.config.label_values) | {0}
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)["napari_dfa"]
    assert attrs["class_names"] == shipped.config.class_names
    capsys.readouterr()
    scores = tmp_path / "scores.json"
    args = ["evaluate", "--images", str(dataset / "images"), "--labels", str(dataset / "masks"), "--json", str(scores)]
    assert main([*args, "--device", "cpu"]) == 0
    assert set(json.loads(scores.read_text())["classes"]) == set(shipped.config.class_names)
