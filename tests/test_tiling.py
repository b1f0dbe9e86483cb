import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_dfa.infer.tiling import ALIGN, band_order, blend_weights, chunk_grid, subtiles


def _coverage(shape, chunks):
    cover = np.zeros(shape, np.int32)
    for c in chunks:
        cover[c.y0 : c.y1, c.x0 : c.x1] += 1
    return cover


@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (700, 1), (31, 33), (64, 64), (65, 129), (300, 200)])
@pytest.mark.parametrize("tile, halo", [(32, 0), (64, 32), (256, 64)])
def test_awkward_sizes_are_covered_exactly_once(shape, tile, halo):
    chunks = chunk_grid(shape, tile, halo)
    assert np.all(_coverage(shape, chunks) == 1)
    for c in chunks:
        assert 0 <= c.wy0 <= c.y0 < c.y1 <= c.wy1 <= shape[0]
        assert 0 <= c.wx0 <= c.x0 < c.x1 <= c.wx1 <= shape[1]
        assert c.wy0 % ALIGN == 0 and c.wx0 % ALIGN == 0  # windows stay on the model's grid
        # at least the halo of context on every side where the image has it
        assert c.y0 - c.wy0 >= min(halo, c.y0) and c.wy1 - c.y1 >= min(halo, shape[0] - c.y1)
        assert c.x0 - c.wx0 >= min(halo, c.x0) and c.wx1 - c.x1 >= min(halo, shape[1] - c.x1)
        sy, sx = c.core
        assert sy.stop - sy.start == c.y1 - c.y0 and sx.stop - sx.start == c.x1 - c.x0


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 3000),
    w=st.integers(1, 3000),
    tile=st.sampled_from([32, 64, 96, 256, 512, 2048]),
    halo=st.sampled_from([0, 32, 64, 128]),
)
def test_chunk_grid_property(h, w, tile, halo):
    chunks = chunk_grid((h, w), tile, halo)
    assert sum(c.pixels for c in chunks) == h * w
    assert len({c.index for c in chunks}) == len(chunks)
    assert all(c.y1 - c.y0 <= tile and c.x1 - c.x0 <= tile for c in chunks)
    assert all(c.wy0 % ALIGN == 0 and c.wx0 % ALIGN == 0 for c in chunks)
    # uniform windows: shifted inward at the borders instead of clipped (up to 31 px short
    # at the far border, where the window origin must stay on the grid)
    for n, (a, e) in [(h, (c.wy0, c.wy1)) for c in chunks] + [(w, (c.wx0, c.wx1)) for c in chunks]:
        full = min(tile + 2 * halo, n)
        assert full - ALIGN < e - a <= full or e - a == n
    interior = {c.window_shape for c in chunks if c.wy1 < h and c.wx1 < w}  # not at the far border
    assert len(interior) <= 1


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 1500),
    w=st.integers(1, 1500),
    size=st.sampled_from([32, 64, 128, 256]),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
)
def test_subtiles_cover_the_window_with_positive_weights(h, w, size, overlap):
    wsum = np.zeros((h, w), np.float32)
    for y0, y1, x0, x1 in subtiles((h, w), size, overlap):
        assert y0 % ALIGN == 0 and x0 % ALIGN == 0
        assert 0 < y1 - y0 <= size and 0 < x1 - x0 <= size
        wsum[y0:y1, x0:x1] += blend_weights((y1 - y0, x1 - x0), "cosine")
    assert wsum.min() > 0


@pytest.mark.parametrize("mode", ["constant", "cosine", "gaussian"])
def test_blend_weights(mode):
    w = blend_weights((64, 96), mode)
    assert w.shape == (64, 96) and w.min() > 0
    if mode != "constant":
        assert w[32, 48] > w[0, 0] and w[32, 48] > w[32, 0]
    with pytest.raises(ValueError):
        blend_weights((4, 4), "triangle")


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), band=st.integers(1, 10))
def test_band_order_is_a_permutation_in_bands_of_rows(rows, cols, band):
    chunks = chunk_grid((rows * 32, cols * 32), 32, 0)
    order = band_order(chunks, band)
    assert sorted(order, key=lambda c: c.index) == sorted(chunks, key=lambda c: c.index)
    idx = [c.index for c in order]
    bands = [j // band for _, j in idx]
    assert bands == sorted(bands)  # one band after the other, left to right
    for b in set(bands):  # each band row by row, left to right within a row
        assert [ij for ij in idx if ij[1] // band == b] == sorted(ij for ij in idx if ij[1] // band == b)
    if band >= cols:
        assert idx == [c.index for c in chunks]  # one band: row-major
    with pytest.raises(ValueError, match="band"):
        band_order(chunks, 0)


def test_bad_tile_or_halo_is_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        chunk_grid((100, 100), 100, 0)
    with pytest.raises(ValueError, match="halo"):
        chunk_grid((100, 100), 64, 10)
