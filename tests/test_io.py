import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import example, given, settings
from hypothesis import strategies as st

from napari_dfa._reader import get_reader
from napari_dfa.errors import InputError
from napari_dfa.io.images import open_image
from napari_dfa.io.pyramid import mean_downsample2, mode_downsample2, multiscales_attrs


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (600, 520, 3), dtype=np.uint8)


def _write_ome_tiff(path, rgb, pixel_size=0.5):
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        opts = dict(tile=(128, 128), photometric="rgb", compression="zlib")
        tw.write(
            rgb, subifds=2, metadata={"axes": "YXS", "PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size}, **opts
        )
        tw.write(rgb[::2, ::2], subfiletype=1, **opts)
        tw.write(rgb[::4, ::4], subfiletype=1, **opts)


def test_pyramidal_ome_tiff(tmp_path, rgb):
    path = tmp_path / "slide.ome.tif"
    _write_ome_tiff(path, rgb)
    pyr = open_image(path)
    assert [lv.shape for lv in pyr.levels] == [(600, 520, 3), (300, 260, 3), (150, 130, 3)]
    assert pyr.pixel_size == pytest.approx(0.5)
    assert np.array_equal(np.asarray(pyr.levels[1][10:20, 30:40]), rgb[::2, ::2][10:20, 30:40])
    assert hasattr(pyr.levels[0], "dask")  # lazy
    # windows are read from the zarr view of the TIFF directly (channels last already)
    assert isinstance(pyr.reader(1), zarr.Array)
    assert np.array_equal(pyr.reader(1)[10:20, 30:40, :3], rgb[::2, ::2][10:20, 30:40])


def test_svs_style_mpp(tmp_path, rgb):
    path = tmp_path / "scan.svs"
    tifffile.imwrite(
        path, rgb, photometric="rgb", tile=(128, 128), description="Aperio Image Library v12 |AppMag = 20|MPP = 0.2520|"
    )
    assert open_image(path).pixel_size == pytest.approx(0.252)


def test_ome_zarr_multiscales(tmp_path, rgb):
    path = tmp_path / "slide.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    chw = np.moveaxis(rgb, -1, 0)
    for i in range(3):
        g.create_array(str(i), data=chw[:, :: 2**i, :: 2**i], chunks=(3, 128, 128))
    g.attrs.update(multiscales_attrs("image", 3, 0.25, channel_axis=True))
    pyr = open_image(path)
    assert [lv.shape for lv in pyr.levels] == [(600, 520, 3), (300, 260, 3), (150, 130, 3)]
    assert pyr.pixel_size == pytest.approx(0.25)
    assert np.array_equal(np.asarray(pyr.levels[2]), rgb[::4, ::4])
    # (c, y, x) on disk: no plain zarr view of (y, x, c), windows are read through dask
    assert pyr.reader(0) is pyr.levels[0]
    with pytest.raises(InputError, match="level 3 does not exist"):
        pyr.reader(3)


def test_channels_last_zarr_is_read_directly(tmp_path, rgb):
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), data=rgb, chunks=(128, 128, 3))
    pyr = open_image(path)
    assert isinstance(pyr.reader(0), zarr.Array)
    assert np.array_equal(pyr.reader(0)[100:300, 50:90], np.asarray(pyr.levels[0][100:300, 50:90]))


def test_reader_contribution_returns_multiscale_image(tmp_path, rgb):
    path = tmp_path / "slide.ome.tif"
    _write_ome_tiff(path, rgb)
    reader = get_reader(str(path))
    assert reader is not None and get_reader(str(tmp_path / "notes.txt")) is None
    ((data, meta, kind),) = reader(str(path))
    assert kind == "image" and meta["multiscale"] and meta["rgb"] and len(data) == 3
    assert meta["scale"] == (0.5, 0.5)


def test_reader_opens_a_segmentation_as_labels(tmp_path):
    import torch

    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.model import DFASegmenter, ModelConfig
    from napari_dfa.train import run_to_end

    torch.manual_seed(0)
    model = DFASegmenter(
        ModelConfig(
            class_names=["x", "y"],
            backbone_channels=[8, 8, 8, 8],
            hidden_dim=16,
            mask_dim=8,
            num_heads=2,
            dec_layers=3,
            ffn_dim=16,
            class_colors=["#ff0000", "#00ff00"],
        )
    ).eval()
    img = np.random.default_rng(1).integers(0, 255, (1100, 300, 3), dtype=np.uint8)
    res = run_to_end(
        segment(
            img,
            model,
            tmp_path / "seg.zarr",
            EngineConfig(tile=256, halo=32, device="cpu", tissue_detection=False, probabilities="uint8"),
        )
    )
    layers = get_reader(str(res.path))(str(res.path))
    data, meta, kind = layers[0]
    assert kind == "labels" and meta["multiscale"] and len(data) == 3  # 1100 -> 550 -> 275 (<= 512)
    assert data[1].shape == (550, 150)
    assert meta["colormap"][1] == "#ff0000" and meta["features"]["class"] == ["background", "x", "y"]
    assert [m["name"] for _, m, _ in layers[1:]] == ["P(x)", "P(y)"]


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_image(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="cannot read"):
        open_image(bad)
    other = tmp_path / "x.bmp"
    other.write_bytes(b"BM")
    with pytest.raises(InputError, match="unsupported format"):
        open_image(other)


def test_stack_is_refused(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 64, 64, 3), np.uint8), photometric="rgb", metadata={"axes": "ZYXS"})
    with pytest.raises(InputError, match="one 2-D RGB plane"):
        open_image(path)


def test_mode_downsampling_never_averages_class_ids():
    lab = np.array([[1, 1, 3, 2], [1, 3, 3, 3], [2, 4, 5, 5]], np.uint8)
    out = mode_downsample2(lab)
    assert out.shape == (2, 2)
    assert out.tolist() == [[1, 3], [2, 5]]
    assert set(np.unique(out)) <= set(np.unique(lab))
    p = np.array([[[0, 10], [20, 30]]], np.uint8)
    assert mean_downsample2(p).tolist() == [[[15]]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])  # uint8: the 16-bit-pair path
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**31 - 1), st.booleans())
@example(2, 2, 4, 0, False)  # one mixed 2 x 2 block: the output must not be a view of the input
def test_mode_downsampling_equals_a_brute_force_mode(dtype, h, w, k, seed, strided):
    """Every 2 x 2 block (edge blocks padded by repeating the last row/column) gets its most
    frequent value, ties to the first in raster order, for uniform and mixed blocks, from
    contiguous arrays and from views of every other column."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, k, (h, 2 * w), dtype=dtype) * (1 if dtype == np.uint8 else 300)
    lab = big[:, ::2] if strided else np.ascontiguousarray(big[:, :w])
    padded = np.pad(lab, ((0, h % 2), (0, w % 2)), mode="edge")
    expected = np.empty(((h + 1) // 2, (w + 1) // 2), dtype)
    for i in range(expected.shape[0]):
        for j in range(expected.shape[1]):
            vals = padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel().tolist()
            expected[i, j] = max(vals, key=lambda v: (vals.count(v), -vals.index(v)))
    before = lab.copy()
    out = mode_downsample2(lab)
    assert np.array_equal(out, expected) and out.dtype == dtype
    assert np.array_equal(lab, before)  # the input is never written to


def test_export_tif_and_png(tmp_path):
    import imageio.v3 as iio

    from napari_dfa.infer.export import export_labels

    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    lab = np.random.default_rng(0).integers(0, 4, (700, 900), dtype=np.uint8)
    g.create_array("labels/0", data=lab, chunks=(256, 256))
    assert np.array_equal(tifffile.imread(export_labels(tmp_path / "s.zarr", tmp_path / "o.tif")), lab)
    assert np.array_equal(iio.imread(export_labels(tmp_path / "s.zarr", tmp_path / "o.png")), lab)


def _write_jpeg_slide(path, img):
    """An SVS-like slide: JPEG tiles, pyramid levels as reduced-resolution pages."""
    desc = "Aperio Image Library v12.0.15 \n1200x1100 [0,0 1200x1100] (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = 0.4990"
    opts = dict(tile=(256, 256), photometric="rgb", compression="jpeg", compressionargs={"level": 90})
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, description=desc, **opts)
        tw.write(img[::2, ::2], subfiletype=1, **opts)
        tw.write(img[::4, ::4], subfiletype=1, **opts)


def test_jpeg_tiled_slide_is_read_and_segmented(tmp_path, tiny_config):
    """Most SVS / NDPI slides have JPEG tiles: they decode (imagecodecs) and segment."""
    import torch

    from napari_dfa.data.synthetic import generate_tissue
    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.model import DFASegmenter
    from napari_dfa.train import run_to_end

    img = generate_tissue((600, 700), seed=2).image
    path = tmp_path / "slide.svs"
    _write_jpeg_slide(path, img)
    with tifffile.TiffFile(path) as tf:
        assert tf.pages[0].compression == tifffile.COMPRESSION.JPEG
    pyr = open_image(path)
    assert [lv.shape[:2] for lv in pyr.levels][:2] == [(600, 700), (300, 350)]
    assert pyr.pixel_size == pytest.approx(0.499)
    got = np.asarray(pyr.reader(0)[:, :, :3]).astype(int)
    # lossy (this texture is noisy), but the same picture: a wrong colour space or
    # channel order would be off by tens of levels
    assert np.abs(got - img).mean() < 8 and np.corrcoef(got.ravel(), img.ravel())[0, 1] > 0.97
    torch.manual_seed(0)
    model = DFASegmenter(tiny_config).eval()
    cfg = EngineConfig(tile=256, device="cpu", tissue_detection=False)
    res = run_to_end(segment(path, model, tmp_path / "out.zarr", cfg))
    labels = zarr.open_group(str(res.path), mode="r")["labels/0"][:]
    assert labels.shape == (600, 700) and set(np.unique(labels)) <= set(model.config.label_values)


def test_tiff_with_tiles_it_cannot_decode_is_refused_up_front(tmp_path, monkeypatch):
    img = np.full((300, 300, 3), 200, np.uint8)
    path = tmp_path / "slide.svs"
    _write_jpeg_slide(path, img)
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", {1: lambda data, out=None: data})  # no JPEG codec
    with pytest.raises(InputError, match=r"JPEG.*pip install imagecodecs"):
        open_image(path)
