"""The generated multiscale whole-slide sample."""

from __future__ import annotations

import numpy as np
import pytest


def test_slide_sample_layers_are_lazy_and_consistent():
    from napari_dfa._sample_data import SLIDE_SCRIBBLES, sample_slide

    (levels, meta, kind), (scrib, smeta, skind), (gt, gmeta, gkind) = sample_slide()
    assert kind == "image" and meta["multiscale"] and meta["rgb"]
    assert [lv.shape for lv in levels] == [(8192 // 2**k, 8192 // 2**k, 3) for k in range(5)]
    assert all(hasattr(lv, "dask") and lv.dtype == np.uint8 for lv in levels)  # nothing rendered yet
    assert skind == "labels" and scrib.shape == (8192, 8192) and scrib.dtype == np.uint8
    y0, x0, y1, x1 = SLIDE_SCRIBBLES["region"]
    inside = scrib[y0:y1, x0:x1]
    assert scrib.sum() == inside.sum() and set(np.unique(inside)) == {0, 1, 2, 3, 4, 5}
    m = inside > 0
    assert np.array_equal(inside[m], np.asarray(gt[0][y0:y1, x0:x1])[m])  # strokes carry the true class
    assert gkind == "labels" and gmeta["visible"] is False
    assert np.asarray(levels[4][:64, :64]).shape == (64, 64, 3)  # a preview block renders


@pytest.mark.slow
def test_slide_preview_colours_match_the_generator():
    from napari_dfa._sample_data import SLIDE_MEAN_COLORS, slide_mean_colors

    np.testing.assert_allclose(slide_mean_colors(max_chunks=2), SLIDE_MEAN_COLORS, atol=12)
