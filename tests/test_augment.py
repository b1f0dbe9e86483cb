import time

import numpy as np
import pytest
import torch
from skimage.color import hed2rgb, rgb2hed

from napari_dfa.data.augment import AugmentConfig, augment_batch, read_size, stain_jitter
from napari_dfa.data.prefetch import Prefetcher
from napari_dfa.data.samples import AnnotatedImage, CropSampler

STILL = dict(flips=False, rot90=False, stain_sigma=0.0, stain_bias=0.0, brightness=0.0, contrast=0.0)


def _batch(rng, b=4, r=40, classes=4):
    images = torch.from_numpy(rng.integers(0, 256, (b, r, r, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, classes + 1, (b, r, r), dtype=np.uint8))
    return images, labels


def test_read_size_fits_the_largest_zoom():
    assert read_size(256, AugmentConfig()) == 320
    assert read_size(255, AugmentConfig(scale_range=(0.8, 1.1))) == 282  # ceil(280.5) = 281 -> even
    assert read_size(64, AugmentConfig(scale_range=(1.0, 1.0))) == 64


def test_stain_jitter_matches_skimage(rng):
    img = rng.random((2, 24, 30, 3)).astype(np.float32)
    img[0, :2] = 0.0  # the log floor
    alpha = np.array([[1.05, 0.96, 1.0], [0.93, 1.04, 1.02]])
    beta = np.array([[0.01, -0.02, 0.005], [-0.015, 0.02, 0.0]])
    ref = np.stack([hed2rgb(rgb2hed(img[i]) * alpha[i] + beta[i]) for i in range(2)])
    out = stain_jitter(
        torch.from_numpy(img).permute(0, 3, 1, 2),
        torch.tensor(alpha, dtype=torch.float32),
        torch.tensor(beta, dtype=torch.float32),
    )
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy(), ref, atol=1e-3)


def test_identity_config_returns_the_centre_crop(rng):
    images, labels = _batch(rng, r=40)
    cfg = AugmentConfig(scale_range=(1.0, 1.0), **STILL)
    x, y = augment_batch(images, labels, 32, cfg, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4, 32, 32) and y.dtype == torch.long
    centre = images[:, 4:36, 4:36].permute(0, 3, 1, 2).float() / 255
    assert (x - centre).abs().max() < 1e-5
    assert torch.equal(y, labels[:, 4:36, 4:36].long())


def test_labels_are_moved_never_interpolated(rng):
    images, labels = _batch(rng, b=8, r=read_size(48, AugmentConfig()))
    labels = labels * 3  # values {0, 3, 6, 9, 12}: an interpolated value would fall between
    x, y = augment_batch(images, labels, 48, AugmentConfig(scale_range=(0.7, 1.4)), torch.Generator().manual_seed(1))
    assert set(y.unique().tolist()) <= set(labels.unique().tolist()) | {0}
    assert x.min() >= 0 and x.max() <= 1


def test_zoom_out_beyond_the_window_gives_unlabeled(rng):
    images, labels = _batch(rng, r=32)
    labels[:] = 5
    cfg = AugmentConfig(scale_range=(2.0, 2.0), **STILL)
    _, y = augment_batch(images, labels, 32, cfg, torch.Generator())
    assert y[:, 0, 0].eq(0).all() and y[:, 16, 16].eq(5).all()


def test_same_generator_seed_same_batch(rng):
    images, labels = _batch(rng, b=6)
    a = augment_batch(images, labels, 32, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment_batch(images, labels, 32, AugmentConfig(), torch.Generator().manual_seed(7))
    c = augment_batch(images, labels, 32, AugmentConfig(), torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_flips_and_rotations_keep_image_and_labels_aligned():
    b, r = 32, 24
    images = torch.zeros(b, r, r, 3, dtype=torch.uint8)
    labels = torch.ones(b, r, r, dtype=torch.uint8)
    images[:, 5, 9] = 255  # a marker off every symmetry axis
    labels[:, 5, 9] = 2
    cfg = AugmentConfig(**{**STILL, "flips": True, "rot90": True}, scale_range=(1.0, 1.0))
    x, y = augment_batch(images, labels, r, cfg, torch.Generator().manual_seed(3))
    places = set()
    for i in range(b):
        img_at = torch.nonzero(x[i, 0] > 0.5).tolist()
        lab_at = torch.nonzero(y[i] == 2).tolist()
        assert len(img_at) == 1 and img_at == lab_at
        places.add(tuple(img_at[0]))
    assert len(places) == 8  # the 8 flips/rotations of a square all occur in 32 draws


@pytest.fixture
def sampler():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    labels = np.zeros((80, 90), np.uint8)
    labels[10:14, 5:60] = 1
    labels[60:62, 40:85] = 2
    return CropSampler([AnnotatedImage(image, labels)], 2, crop_size=32, seed=3)


def test_sampler_batches_are_raw_windows_fixed_by_seed_and_index(sampler):
    x, y = sampler.batch(5, 4)
    assert x.shape == (5, 40, 40, 3) and y.shape == (5, 40, 40) and x.dtype == y.dtype == np.uint8
    x2, y2 = sampler.batch(5, 4)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(sampler.batch(5, 5)[0], x)
    assert all(set(np.unique(lab)) & {1, 2} for lab in y)  # every window holds annotations


def test_prefetcher_gives_the_synchronous_batches_in_order(sampler):
    with Prefetcher(sampler, 3, start=2, depth=2) as pf:
        got = [pf.next() for _ in range(5)]
    sync = Prefetcher(sampler, 3, start=2, depth=0)
    for i, (x, y) in enumerate(got):
        ex, ey = sampler.batch(3, 2 + i)
        sx, sy = sync.next()
        assert np.array_equal(x, ex) and np.array_equal(y, ey) and np.array_equal(sx, ex) and np.array_equal(sy, ey)
    assert pf.wait_seconds >= 0 and sync.wait_seconds > 0


class _Failing:
    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.calls: list[int] = []

    def batch(self, n: int, index: int):
        self.calls.append(index)
        if index == self.fail_at:
            raise ValueError(f"bad batch {index}")
        return np.full((n, 2, 2, 3), index, np.uint8), np.zeros((n, 2, 2), np.uint8)


def test_prefetcher_reraises_worker_errors():
    pf = Prefetcher(_Failing(2), 1, depth=2)
    assert pf.next()[0][0, 0, 0, 0] == 0 and pf.next()[0][0, 0, 0, 0] == 1
    with pytest.raises(ValueError, match="bad batch 2"):
        pf.next()
    pf.close()


class _Slow:
    def __init__(self) -> None:
        self.made = 0

    def batch(self, n: int, index: int):
        time.sleep(0.01)
        self.made += 1
        return np.zeros((n, 2, 2, 3), np.uint8), np.zeros((n, 2, 2), np.uint8)


def test_prefetcher_close_stops_the_worker_promptly():
    src = _Slow()
    pf = Prefetcher(src, 1, depth=2)
    pf.next()
    time.sleep(0.1)  # the queue is full: the worker waits
    assert src.made <= 4  # one taken, two queued, one waiting to be put
    t = time.perf_counter()
    pf.close()
    assert time.perf_counter() - t < 1.0
    assert not pf._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        pf.next()
