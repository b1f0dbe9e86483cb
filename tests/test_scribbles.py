"""Tests for user-like scribble simulation (napari_dfa.data.scribbles)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dfa.data.scribbles import default_brush_radius, make_scribbles
from napari_dfa.data.synthetic import generate_tissue


@pytest.fixture(scope="module")
def dense256() -> np.ndarray:
    return generate_tissue((256, 256), seed=11).labels


@pytest.fixture(scope="module")
def dense512() -> np.ndarray:
    return generate_tissue((512, 512), seed=12).labels


def _blobs(shape=(300, 300)) -> np.ndarray:
    """Hand-made mask with 0 = ignore, two big classes, a 3x3 class and a 1-px line."""
    lab = np.zeros(shape, np.uint8)
    lab[20:150, 20:280] = 1
    lab[150:280, 20:280] = 2
    lab[200:203, 100:103] = 3  # tiny island
    lab[60, 40:200] = 4  # one pixel wide line
    return lab


@pytest.mark.parametrize("fraction", [0.01, 0.02, 0.03])
def test_fraction_in_range(dense256, dense512, fraction):
    for dense in (dense256, dense512):
        sc = make_scribbles(dense, fraction=fraction, seed=1)
        kept = (sc > 0).sum() / (dense > 0).sum()
        assert 0.7 * fraction <= kept <= 1.3 * fraction, (dense.shape, kept)


def test_fraction_ignores_unlabelled_pixels():
    lab = _blobs()
    sc = make_scribbles(lab, fraction=0.02, seed=0)
    kept = (sc > 0).sum() / (lab > 0).sum()
    assert 0.5 * 0.02 <= kept <= 1.5 * 0.02
    assert not sc[lab == 0].any()  # ignored pixels never scribbled


def test_deterministic(dense256):
    a = make_scribbles(dense256, 0.02, seed=5)
    b = make_scribbles(dense256, 0.02, seed=5)
    c = make_scribbles(dense256, 0.02, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == dense256.shape


def test_every_class_gets_a_scribble_with_correct_class(dense512):
    lab = _blobs()
    for dense in (lab, dense512):
        sc = make_scribbles(dense, fraction=0.01, seed=3)
        present = set(np.unique(dense)) - {0}
        assert set(np.unique(sc)) - {0} == present
        m = sc > 0
        np.testing.assert_array_equal(sc[m], dense[m])  # subset of the dense mask
    sc = make_scribbles(lab, fraction=0.01, seed=3)
    assert (sc == 3).sum() >= 1 and (sc == 4).sum() >= 3


def test_strokes_stay_inside_regions(dense512):
    r = default_brush_radius(dense512.shape)
    assert 2 <= r <= 6
    sc = make_scribbles(dense512, fraction=0.03, seed=4)
    # no scribble pixel touches a pixel of another class (strokes are drawn inside
    # the class region eroded by the brush radius); only big regions are checked
    # because thin classes fall back to a smaller brush
    for k in np.unique(dense512):
        region = dense512 == k
        other = ndi.binary_dilation(~region)
        big = ndi.binary_erosion(region, iterations=r + 1).sum() > 0
        if big:
            assert not np.any((sc == k) & other & region), k


def test_strokes_look_like_brush_strokes(dense512):
    sc = make_scribbles(dense512, fraction=0.02, seed=8, max_strokes_per_class=1)
    for k in set(np.unique(dense512)):
        _, n = ndi.label(sc == k, structure=np.ones((3, 3)))
        assert n == 1, (k, n)  # one stroke per class = one connected component
    sc = make_scribbles(dense512, fraction=0.02, seed=8, brush_radius=4)
    for k in set(np.unique(sc)) - {0}:
        m = sc == k
        # a round brush of radius 4 leaves stroke cores that survive an erosion
        assert ndi.binary_erosion(m, iterations=2).any()
        _, n = ndi.label(m, structure=np.ones((3, 3)))
        assert n <= 64


def test_ignore_index_none_shifts_labels():
    lab = np.zeros((200, 200), np.int32)  # 0 is a real class here
    lab[:, 100:] = 1
    lab[150:, :50] = 2
    sc = make_scribbles(lab, fraction=0.02, seed=0, ignore_index=None)
    assert set(np.unique(sc)) == {0, 1, 2, 3}
    m = sc > 0
    np.testing.assert_array_equal(sc[m], lab[m] + 1)
    kept = m.sum() / lab.size
    assert 0.01 <= kept <= 0.03


def test_custom_ignore_index():
    lab = _blobs().astype(np.int16)
    lab[lab == 0] = 255
    sc = make_scribbles(lab, fraction=0.02, seed=0, ignore_index=255)
    assert not sc[lab == 255].any()
    assert set(np.unique(sc)) == {0, 1, 2, 3, 4}


def test_degenerate_inputs():
    z = np.zeros((64, 64), np.uint8)
    out = make_scribbles(z, fraction=0.05)
    assert out.dtype == np.uint8 and out.shape == z.shape and not out.any()
    assert not make_scribbles(_blobs(), fraction=0.0).any()
    one = np.full((64, 64), 3, np.uint8)  # single class, no boundaries
    sc = make_scribbles(one, fraction=0.05, seed=0)
    assert set(np.unique(sc)) == {0, 3}
    with pytest.raises(ValueError):
        make_scribbles(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError):
        make_scribbles(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError):  # 0 as a class would collide with "unlabelled"
        make_scribbles(_blobs(), ignore_index=255)
