"""Finding annotations on large label images and rasterising shapes (Qt-free)."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_dfa.data.regions import (
    Region,
    annotated_regions,
    class_counts,
    merge_regions,
    rasterize_shapes,
    read_region,
    view_region,
)


class CountingArray:
    """A label array that records every region read from it."""

    def __init__(self, arr):
        self.arr, self.reads = arr, []
        self.shape, self.dtype = arr.shape, arr.dtype

    def __getitem__(self, key):
        self.reads.append(key)
        return self.arr[key]


def test_annotated_regions_reads_chunk_by_chunk_and_groups():
    lab = np.zeros((4000, 3000), np.uint8)
    lab[100:120, 2900:2950] = 1  # far from the others: its own box
    lab[1020:1030, 1000:1100] = 2  # across four chunks: one box
    lab[1100:1110, 1040:1060] = 3  # close to it: merged
    lab[3990:4000, 0:5] = 4
    arr = CountingArray(lab)
    regions = annotated_regions(arr, chunk=1024, margin=10)
    assert regions == [Region(90, 2890, 130, 2960), Region(1010, 990, 1120, 1110), Region(3980, 0, 4000, 15)]
    assert len(arr.reads) == 4 * 3  # every chunk once, never the whole image
    assert all(k[0].stop - k[0].start <= 1024 and k[1].stop - k[1].start <= 1024 for k in arr.reads)


def test_annotated_regions_clip_merge_and_empty():
    lab = np.zeros((500, 500), np.uint8)
    assert annotated_regions(lab, chunk=128) == []
    lab[0:5, 0:5] = 1
    lab[0:5, 300:305] = 2
    assert annotated_regions(lab, chunk=128, margin=200) == [Region(0, 0, 205, 500)]  # overlapping boxes merge
    lazy = da.from_array(lab, chunks=128)
    assert annotated_regions(lazy, chunk=128) == [Region(0, 0, 5, 5), Region(0, 300, 5, 305)]


def test_class_counts_and_read_region():
    crops = [np.array([[0, 1, 1], [2, 0, 3]], np.uint8), np.array([[3, 3]], np.uint8)]
    assert class_counts(crops, 4).tolist() == [2, 1, 3, 0]
    img = da.from_array(np.arange(60).reshape(5, 4, 3), chunks=2)
    out = read_region(img, Region(1, 1, 3, 4))
    assert isinstance(out, np.ndarray) and out.shape == (2, 3, 3) and out[0, 0, 0] == 15


def test_merge_regions():
    a, b, c = Region(0, 0, 10, 10), Region(5, 5, 20, 20), Region(50, 50, 60, 60)
    assert merge_regions([c, a, b]) == [Region(0, 0, 20, 20), c]


def test_view_region_from_corner_pixels():
    # level 1 (2x) view corners [[10, 20], [109, 219]] -> level 0 [20, 220) x [40, 440)
    r = view_region([[10, 20], [109, 219]], (2, 2), (1000, 1000), 4096)
    assert r == Region(20, 40, 220, 440)
    r = view_region([[0, 0], [999, 999]], (1, 1), (1000, 1000), 256)  # central 256 px
    assert r.shape == (256, 256) and r.y0 == 372
    assert view_region([[2000, 2000], [2100, 2100]], (1, 1), (1000, 1000), 256).size == 0


def test_rasterize_shapes_kinds_and_groups():
    rect = np.array([[10, 10], [10, 19], [19, 19], [19, 10]], float)
    ell = np.array([[100, 100], [100, 140], [120, 140], [120, 100]], float)
    path = np.array([[300, 300], [300, 340]], float)
    regions, crops = rasterize_shapes(
        [rect, ell, path],
        ["rectangle", "ellipse", "path"],
        [1, 2, 3],
        (1000, 1000),
        widths=[1, 1, 5],
        margin=4,
    )
    assert len(regions) == 3
    full = np.zeros((1000, 1000), np.uint8)
    for r, c in zip(regions, crops, strict=False):
        full[r.slices] = np.maximum(full[r.slices], c)
    assert (full == 1).sum() == 100  # 10 x 10 px rectangle (vertices on pixel centres)
    area = (full == 2).sum()
    assert abs(area - np.pi * 10 * 20) < 0.15 * np.pi * 200  # ellipse with radii 10, 20
    assert (full[298:303, 300:341] == 3).mean() > 0.9 and (full == 3).sum() < 5 * 45
    assert rasterize_shapes([rect], ["polygon"], [0], (100, 100)) == ([], [])  # class 0: ignored
    regions, _ = rasterize_shapes([rect, rect + 5], ["polygon", "polygon"], [1, 2], (100, 100))
    assert len(regions) == 1  # overlapping shapes share one crop
