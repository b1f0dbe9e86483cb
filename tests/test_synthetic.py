"""Tests for the synthetic H&E tissue generator (napari_dfa.data.synthetic)."""

from __future__ import annotations

import re

import dask
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.color import rgb2hed

from napari_dfa.data.synthetic import (
    CLASS_COLORS,
    CLASS_NAMES,
    CLASSES,
    ClassSpec,
    SyntheticSample,
    generate_dataset,
    generate_tissue,
    lazy_slide,
)

STROMA, TUMOR, NECROSIS, LYMPH, MUCIN = 1, 2, 3, 4, 5


@pytest.fixture(scope="module")
def sample512() -> SyntheticSample:
    return generate_tissue((512, 512), seed=0)


@pytest.fixture(scope="module")
def sample512_easy() -> SyntheticSample:
    return generate_tissue((512, 512), seed=0, difficulty=0.0)


# --------------------------------------------------------------------------- helpers
def _features(img: np.ndarray, w: int = 15) -> np.ndarray:
    """Per-pixel features a very small model could use: local mean RGB + local std."""
    x = img.astype(np.float32) / 255.0
    g = x.mean(-1)
    feats = [ndi.uniform_filter(x[..., c], w) for c in range(3)]
    m = ndi.uniform_filter(g, w)
    feats.append(np.sqrt(np.maximum(ndi.uniform_filter(g * g, w) - m * m, 0.0)))
    return np.stack(feats, -1)


def _interiors(labels: np.ndarray, erode: int = 7) -> np.ndarray:
    """Labels with a band of ``erode`` px around every region boundary set to 0."""
    out = np.zeros_like(labels)
    for k in np.unique(labels):
        m = labels == k
        out[ndi.binary_erosion(m, iterations=erode)] = k
    return out


def _fisher(f: np.ndarray, lab: np.ndarray, a: int, b: int) -> float:
    """Diagonal-Mahalanobis distance between the feature means of classes a and b."""
    fa, fb = f[lab == a], f[lab == b]
    pooled = np.sqrt(0.5 * (fa.var(0) + fb.var(0))) + 1e-9
    return float(np.linalg.norm((fa.mean(0) - fb.mean(0)) / pooled))


# --------------------------------------------------------------------------- API
def test_class_table():
    assert len(CLASSES) == 5
    assert all(isinstance(c, ClassSpec) for c in CLASSES)
    assert CLASS_NAMES == ("stroma", "tumor", "necrosis", "lymphocytes", "mucin")
    assert tuple(c.color for c in CLASSES) == CLASS_COLORS
    assert all(re.fullmatch(r"#[0-9a-fA-F]{6}", c) for c in CLASS_COLORS)
    assert len(set(CLASS_COLORS)) == 5
    assert sum(c.frequency for c in CLASSES) == pytest.approx(1.0)
    diff = {c.name: c.difficulty for c in CLASSES}
    assert diff["necrosis"] == diff["mucin"] == "hard"
    assert diff["lymphocytes"] == diff["stroma"] == "easy"
    freq = {c.name: c.frequency for c in CLASSES}
    # frequency and difficulty are independent: a rare easy and a frequent hard class
    assert freq["lymphocytes"] < 0.1 < 0.2 < freq["necrosis"]


def test_dtype_shape_range(sample512):
    s = generate_tissue((96, 130), seed=5)
    assert isinstance(s, SyntheticSample)
    assert s.image.shape == (96, 130, 3) and s.image.dtype == np.uint8
    assert s.labels.shape == (96, 130) and s.labels.dtype == np.uint8
    assert s.labels.min() >= 1 and s.labels.max() <= 5
    assert s.class_names == CLASS_NAMES and s.class_colors == CLASS_COLORS
    img = sample512.image
    assert img.std() > 10  # not blank
    assert 60 < img.mean() < 230


def test_determinism():
    a = generate_tissue((128, 160), seed=3)
    b = generate_tissue((128, 160), seed=3)
    c = generate_tissue((128, 160), seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels, c.labels)


def test_all_classes_and_default_fractions(sample512):
    lab = sample512.labels
    counts = np.bincount(lab.ravel(), minlength=6)
    assert counts[0] == 0  # every pixel labelled
    assert np.all(counts[1:] > 0)
    frac = counts[1:] / lab.size
    expected = np.array([c.frequency for c in CLASSES])
    np.testing.assert_allclose(frac, expected, atol=0.03)


def test_class_fractions_override():
    s = generate_tissue((256, 256), seed=1, class_fractions={"lymphocytes": 0.4, "stroma": 0.6})
    frac = np.bincount(s.labels.ravel(), minlength=6)[1:] / s.labels.size
    np.testing.assert_allclose(frac, [0.6, 0, 0, 0.4, 0], atol=0.03)
    fr = [0.1, 0.2, 0.3, 0.25, 0.15]
    s = generate_tissue((256, 256), seed=2, class_fractions=fr)
    frac = np.bincount(s.labels.ravel(), minlength=6)[1:] / s.labels.size
    np.testing.assert_allclose(frac, fr, atol=0.03)
    with pytest.raises(ValueError):
        generate_tissue((64, 64), class_fractions=[1, 2, 3])
    with pytest.raises(ValueError):
        generate_tissue((64, 64), class_fractions={"bone": 1.0})


def test_colour_sanity(sample512):
    hed = rgb2hed(sample512.image)
    lab = sample512.labels
    h, e = hed[..., 0], hed[..., 1]
    assert h[lab == LYMPH].mean() > 1.5 * h[lab == STROMA].mean()
    assert e[lab == STROMA].mean() > e[lab == LYMPH].mean()
    # stroma is pink (red > blue > green), lymphocyte aggregates are dark purple-blue
    rgb = sample512.image.astype(float)
    r, g, b = rgb[lab == STROMA].mean(0)
    assert r > b > g
    assert rgb[lab == LYMPH].mean() < rgb[lab == STROMA].mean() - 40


def test_hard_is_not_rare(sample512):
    """Lymphocytes (rare, easy) separate from stroma far better than necrosis
    (frequent, hard) does, with simple colour/texture features."""
    f = _features(sample512.image)
    lab = _interiors(sample512.labels)
    assert (lab == LYMPH).sum() > 500
    d_lym = _fisher(f, lab, LYMPH, STROMA)
    d_nec = _fisher(f, lab, NECROSIS, STROMA)
    assert d_lym > 2.0 * d_nec, (d_lym, d_nec)
    # nearest-centroid (pooled diagonal) classifier: necrosis is confused with stroma
    # noticeably more often than lymphocytes are
    keep = lab > 0
    fk, lk = f[keep], lab[keep]
    mu = np.stack([fk[lk == k].mean(0) for k in range(1, 6)])
    sd = fk.std(0)
    pred = np.argmin((((fk[:, None, :] - mu[None]) / sd) ** 2).sum(-1), axis=1) + 1
    nec_as_str = np.mean(pred[lk == NECROSIS] == STROMA)
    lym_as_str = np.mean(pred[lk == LYMPH] == STROMA)
    assert nec_as_str > lym_as_str + 0.05, (nec_as_str, lym_as_str)


def test_difficulty_controls_lookalikes(sample512, sample512_easy):
    hard_f, hard_l = _features(sample512.image), _interiors(sample512.labels)
    easy_f, easy_l = _features(sample512_easy.image), _interiors(sample512_easy.labels)
    # same seed -> same layout regardless of difficulty
    np.testing.assert_array_equal(sample512.labels, sample512_easy.labels)
    assert _fisher(easy_f, easy_l, NECROSIS, STROMA) > 1.5 * _fisher(hard_f, hard_l, NECROSIS, STROMA)
    assert _fisher(easy_f, easy_l, MUCIN, TUMOR) > 1.2 * _fisher(hard_f, hard_l, MUCIN, TUMOR)


def test_generate_dataset():
    ds = generate_dataset(3, shape=(64, 80), seed=7, difficulty=0.5)
    assert len(ds) == 3
    assert all(s.image.shape == (64, 80, 3) for s in ds)
    assert not np.array_equal(ds[0].image, ds[1].image)
    again = generate_dataset(3, shape=(64, 80), seed=7, difficulty=0.5)
    for a, b in zip(ds, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert generate_dataset(0) == []


# --------------------------------------------------------------------------- lazy slide
def test_lazy_slide_structure_and_one_chunk():
    img, lab = lazy_slide()  # default 16384 x 16384, chunk 1024
    assert img.shape == (16384, 16384, 3) and img.dtype == np.uint8
    assert lab.shape == (16384, 16384) and lab.dtype == np.uint8
    assert img.chunksize == (1024, 1024, 3) and lab.chunksize == (1024, 1024)
    assert img.npartitions == 256
    block = img.blocks[7, 9].compute()  # one chunk computes on its own (speed: see the generator docs)
    assert block.shape == (1024, 1024, 3) and block.dtype == np.uint8
    assert block.std() > 10


def test_lazy_slide_chunks_match_full_compute_and_are_seamless():
    img, lab = lazy_slide((640, 576), chunk=256, seed=2, background_fraction=0.1)
    assert img.chunks == ((256, 256, 128), (256, 256, 64), (3,))
    full_img, full_lab = dask.compute(img, lab)
    np.testing.assert_array_equal(img.blocks[1, 1].compute(), full_img[256:512, 256:512])
    np.testing.assert_array_equal(lab.blocks[1, 1].compute(), full_lab[256:512, 256:512])
    np.testing.assert_array_equal(img.blocks[2, 2].compute(), full_img[512:640, 512:576])  # ragged edge chunk

    # a different chunking gives the same slide: layout and texture are functions of
    # the global position only, so nothing changes at chunk borders
    img2, lab2 = lazy_slide((640, 576), chunk=192, seed=2, background_fraction=0.1)
    full_img2, full_lab2 = dask.compute(img2, lab2)
    assert np.mean(full_lab2 == full_lab) > 0.9999
    assert np.mean(np.all(full_img2 == full_img, axis=-1)) > 0.999

    # label layout is continuous across chunk borders: label changes between the two
    # rows at a chunk border are as rare as between any two adjacent rows
    tissue_rows = full_lab > 0
    changes = (full_lab[1:] != full_lab[:-1]) & tissue_rows[1:] & tissue_rows[:-1]
    per_row = changes.mean(1)
    assert per_row[255] <= 3 * per_row.mean() + 0.01
    assert per_row[511] <= 3 * per_row.mean() + 0.01


def test_lazy_slide_background_and_fractions():
    img, lab = lazy_slide((2048, 2048), chunk=1024, seed=1, background_fraction=0.25)
    L = lab.compute()  # labels only: cheap, no rendering
    bg = (L == 0).mean()
    assert abs(bg - 0.25) < 0.05
    tissue = L[L > 0]
    frac = np.bincount(tissue, minlength=6)[1:] / tissue.size
    np.testing.assert_allclose(frac, [c.frequency for c in CLASSES], atol=0.05)
    # glass renders as near-white, tissue does not
    block = img[:256, :256].compute()  # only the chunk(s) under the slice are rendered
    lb = L[:256, :256]
    if (lb == 0).any():
        assert block[lb == 0].mean() > 225
    no_bg = lazy_slide((512, 512), chunk=256, seed=1)[1].compute()
    assert (no_bg == 0).sum() == 0
    with pytest.raises(ValueError):
        lazy_slide((256, 256), chunk=128, background_fraction=1.0)
