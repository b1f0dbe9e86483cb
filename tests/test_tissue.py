import numpy as np
import pytest
from skimage.color import rgb2hsv

from napari_dfa.infer.tissue import saturation


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_saturation_equals_skimage_hsv(dtype):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 80, 3)).astype(dtype)
    rgb[:4, :4] = 0  # black: saturation 0, no division by zero
    rgb[4:8, :4] = 200  # grey: 0
    if dtype == np.float32:
        rgb /= 255
    elif dtype == np.uint16:
        rgb *= 257
    s = saturation(rgb)
    assert s.dtype == np.float32 and s.shape == rgb.shape[:2]
    np.testing.assert_allclose(s, rgb2hsv(rgb)[..., 1], atol=1e-6)
    assert (s[:8, :4] == 0).all()
