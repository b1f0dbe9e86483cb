import subprocess
import sys

import numpy as np

from napari_dfa.sample import load_sample


def test_shipped_sample_is_consistent():
    s = load_sample()
    h, w = s.image.shape[:2]
    assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3)
    assert s.scribbles.shape == (h, w) and s.ground_truth.shape == (h, w)
    assert len(s.class_names) == len(s.class_colors) == 5
    frac = (s.scribbles > 0).mean()
    assert 0.01 <= frac <= 0.03
    # every scribble carries the ground-truth class of its pixel, every class is scribbled
    m = s.scribbles > 0
    assert np.array_equal(s.scribbles[m], s.ground_truth[m])
    assert set(np.unique(s.scribbles)) == {0, 1, 2, 3, 4, 5}


def test_npe2_sample_provider_returns_layers():
    from napari_dfa._sample_data import sample_tissue

    layers = sample_tissue()
    assert [t for _, _, t in layers] == ["image", "labels", "labels"]
    img, meta, _ = layers[0]
    assert img.ndim == 3 and meta["rgb"]
    cmap = layers[1][1]["colormap"]
    assert cmap[0] == "transparent" and len([k for k in cmap if k]) == 5


def test_manifest_validates():
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-dfa"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
