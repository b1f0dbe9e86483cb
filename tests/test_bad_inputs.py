"""The bad-input matrix: every user mistake gives a clear message (API and CLI), leaves
no partial output, and never modifies the user's data. Correctly handled oddities
(RGBA, uint16, float, tiny images) are checked to work."""

import hashlib
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import zarr

from napari_dfa.cli import main
from napari_dfa.data.scribbles import make_scribbles
from napari_dfa.data.synthetic import generate_tissue
from napari_dfa.errors import DFAError, InputError
from napari_dfa.infer.engine import EngineConfig, segment
from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.predict import predict_image
from napari_dfa.train import TrainConfig, fine_tune, run_to_end

SMALL = dict(
    backbone_channels=[8, 8, 8, 8],
    backbone_blocks=[1, 1, 1, 1],
    hidden_dim=16,
    mask_dim=8,
    num_heads=2,
    dec_layers=3,
    ffn_dim=16,
)


@pytest.fixture(scope="module")
def sample():
    s = generate_tissue((128, 160), seed=4)
    return s.image, make_scribbles(s.labels, 0.05, seed=1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DFASegmenter(ModelConfig(class_names=list("abcde"), **SMALL)).eval()


def _train(img, lab, names=tuple("abcde"), **kw):
    cfg = TrainConfig(steps=1, batch_size=1, crop_size=64, device="cpu", model_overrides=dict(SMALL), **kw)
    return run_to_end(fine_tune([img], [lab], list(names), config=cfg))


def _segment(img, model, tmp_path, **kw):
    cfg = EngineConfig(tile=64, halo=32, device="cpu", tissue_detection=False, **kw)
    return run_to_end(segment(img, model, tmp_path / "out.zarr", cfg))


# --- images -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda im: im[..., 0], "grayscale"),
        (lambda im: np.stack([im] * 4), "one RGB image"),  # a 3-D stack / time series
        (lambda im: np.moveaxis(im, -1, 0), "channel-first"),
        (lambda im: np.concatenate([im, im], -1), "6 channels"),
    ],
)
def test_bad_image_shapes_are_refused(sample, model, tmp_path, make, message):
    img, lab = sample
    bad = make(img)
    before = bad.copy()
    with pytest.raises(InputError, match=message):
        _train(bad, lab)
    with pytest.raises(InputError, match=message):
        _segment(bad, model, tmp_path)
    assert np.array_equal(bad, before)
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: np.concatenate([im, np.full(im.shape[:2] + (1,), 255, np.uint8)], -1),  # RGBA
        lambda im: im.astype(np.uint16) * 257,
        lambda im: im.astype(np.float32) / 255.0,
        lambda im: im.astype(np.float64),  # float in [0, 255]
    ],
    ids=["rgba", "uint16", "float01", "float255"],
)
def test_other_encodings_are_converted_consistently(sample, model, tmp_path, convert):
    img, lab = sample
    ref = predict_image(model, img)
    ref_tiled = zarr.open_group(str(_segment(img, model, tmp_path / "ref").path), mode="r")["labels/0"][:]
    other = convert(img)
    before = other.copy()
    assert (predict_image(model, other) == ref).mean() > 0.999
    res = _segment(other, model, tmp_path)
    assert (zarr.open_group(str(res.path), mode="r")["labels/0"][:] == ref_tiled).mean() > 0.999
    assert _train(other, lab).steps == 1
    assert np.array_equal(other, before)


def test_nan_and_out_of_range_pixels_are_refused(sample, model, tmp_path):
    img, lab = sample
    bad = img.astype(np.float32) / 255
    bad[3, 4, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _train(bad, lab)
    with pytest.raises(InputError, match="NaN"):
        _segment(bad, model, tmp_path)
    assert not (tmp_path / "out.zarr").exists()
    with pytest.raises(InputError, match=r"\[0, 1\] or \[0, 255\]"):
        _train(img.astype(np.float32) * 10, lab)
    with pytest.raises(InputError, match="dtype"):
        _segment(img.astype(np.int64) + (1 << 40), model, tmp_path)


def test_image_smaller_than_a_tile_works(model, tmp_path):
    s = generate_tissue((20, 27), seed=2)
    assert predict_image(model, s.image).shape == (20, 27)
    res = _segment(s.image, model, tmp_path)
    assert res.tiles == 1 and zarr.open_group(str(res.path), mode="r")["labels/0"].shape == (20, 27)
    lab = np.zeros((20, 27), np.uint8)
    lab[2:5, 2:20] = 1
    lab[12:15, 2:20] = 2
    assert _train(s.image, lab, names="ab").steps == 1


# --- annotations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, names, message",
    [
        (lambda lab: lab[:100], "abcde", "differs from the image shape"),
        (lambda lab: lab, "ab", "only 2 classes"),
        (lambda lab: np.zeros_like(lab), "abcde", "no annotations"),
        (lambda lab: np.where(lab == 1, 1, 0).astype(np.uint8), "abcde", "at least one other class"),
        (lambda lab: lab.astype(np.float32), "abcde", "integer label values"),
        (lambda lab: lab.astype(np.int16) - 1, "abcde", "negative"),
    ],
)
def test_bad_annotations_are_refused(sample, make, names, message):
    img, lab = sample
    bad = make(lab.copy())
    before = bad.copy()
    with pytest.raises(InputError, match=message):
        _train(img, bad, names=names)
    assert np.array_equal(bad, before)


# --- stores, outputs, devices ---------------------------------------------------------------------------


def test_corrupt_zarr_chunk_gives_a_clear_error(sample, model, tmp_path):
    img, _ = sample
    src = tmp_path / "img.zarr"
    arr = zarr.create_array(str(src), shape=img.shape, chunks=(64, 64, 3), dtype="uint8")
    arr[:] = img
    chunk = next(p for p in (src / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"garbage" * 10)
    from napari_dfa.io.images import open_image

    with pytest.raises(InputError, match="corrupt"):
        _segment(open_image(src), model, tmp_path)
    assert not (tmp_path / "out.zarr").exists()


def test_unwritable_output_is_refused(sample, model, tmp_path):
    img, _ = sample
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    with pytest.raises(DFAError, match="cannot write"):
        run_to_end(segment(img, model, blocker / "out.zarr", EngineConfig(tile=64, device="cpu")))
    assert blocker.read_text() == "I am a file"


def test_cuda_requested_without_cuda(sample, model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    img, lab = sample
    with pytest.raises(DFAError, match="CUDA is not available"):
        _train(img, lab, device_override="cuda") if False else run_to_end(
            fine_tune([img], [lab], list("abcde"), config=TrainConfig(steps=1, device="cuda"))
        )
    with pytest.raises(DFAError, match="CUDA is not available"):
        run_to_end(segment(img, model, tmp_path / "o.zarr", EngineConfig(device="cuda")))


# --- the same through the CLI: one line, exit code 2, files untouched ----------------------------------


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture
def files(tmp_path, sample):
    img, lab = sample
    (tmp_path / "imgs").mkdir()
    (tmp_path / "labs").mkdir()
    iio.imwrite(tmp_path / "imgs" / "a.png", img)
    iio.imwrite(tmp_path / "labs" / "a.png", lab)
    iio.imwrite(tmp_path / "gray.png", img[..., 0])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG not really")
    model_dir = tmp_path / "model"
    from napari_dfa.checkpoint import save_model

    torch.manual_seed(0)
    save_model(DFASegmenter(ModelConfig(class_names=list("abcde"), **SMALL)), model_dir)
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "--model", "{m}", "{d}/gray.png", "--out", "{d}/o.zarr"], "grayscale"),
        (["predict", "--model", "{m}", "{d}/garbage.png", "--out", "{d}/o.zarr"], "cannot read"),
        (["predict", "--model", "{m}", "{d}/missing.png", "--out", "{d}/o.zarr"], "does not exist"),
        (["predict", "--model", "{m}", "{d}/imgs/a.png", "--out", "{d}/o.bmp"], ".zarr"),
        (["predict", "--model", "{d}/imgs", "{d}/imgs/a.png", "--out", "{d}/o.zarr"], "not a napari-dfa model folder"),
        (
            [
                "train",
                "--images",
                "{d}/imgs",
                "--labels",
                "{d}/labs",
                "--classes",
                "a,b",
                "--out",
                "{d}/o",
                "--steps",
                "1",
            ],
            "only 2 class",
        ),
        (
            [
                "train",
                "--images",
                "{d}/gray.png",
                "--labels",
                "{d}/labs/a.png",
                "--out",
                "{d}/o",
                "--steps",
                "1",
                "--init",
                "none",
            ],
            "grayscale",
        ),
        (
            ["train", "--images", "{d}/imgs", "--labels", "{d}/labs", "--out", "{d}/o", "--backbone", "timm:resnet18"],
            "add --init none",
        ),
        (
            ["train", "--images", "{d}/imgs", "--labels", "{d}/labs", "--out", "{d}/o", "--init", "none"]
            + ["--backbone", "timm:tf_efficientnet_lite0", "--backbone-weights", "{d}/imgs/a.png"],
            "safetensors",
        ),
        (
            ["evaluate", "--model", "{m}", "--images", "{d}/imgs", "--labels", "{d}/labs", "--ignore-index", "none"],
            "does not know",
        ),
    ],
)
def test_cli_bad_inputs(files, capsys, argv, message):
    d = files
    inputs = sorted(p for p in d.rglob("*") if p.is_file())
    before = {p: _md5(p) for p in inputs}
    argv = [a.replace("{d}", str(d)).replace("{m}", str(d / "model")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("napari-dfa: error:") and message in err[-1], err[-1]
    assert {p: _md5(p) for p in inputs} == before  # the user's files are untouched
    assert not (d / "o.zarr").exists() and not (d / "o").exists() and not (d / "o.zarr.partial").exists()


def test_cli_corrupt_model_files(files, capsys):
    d = files
    (d / "model" / "model.safetensors").write_bytes((d / "model" / "model.safetensors").read_bytes()[:100])
    assert main(["predict", "--model", str(d / "model"), str(d / "imgs" / "a.png"), "--out", str(d / "o.zarr")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    shutil.rmtree(d / "model")
