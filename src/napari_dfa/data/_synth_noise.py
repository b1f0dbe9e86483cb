"""Layout and noise machinery of the synthetic tissue generator.

Class-fraction resolution, cubic upsampling of low-resolution fields, smooth noise,
position-hashed (seamless) noise and lattice fields, the low-resolution class layout,
its exact-quantile thresholds and soft assignment, and per-image stain parameters.

Private module, used by :mod:`napari_dfa.data.synthetic`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
from scipy import ndimage as ndi

from napari_dfa.data._synth_classes import _K, _REGION_FINE, _REGION_SIGMA, CLASS_NAMES, CLASSES


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
def _resolve_fractions(class_fractions) -> np.ndarray:
    """Normalise ``class_fractions`` (None, sequence of K floats or name->float map)."""
    if class_fractions is None:
        fr = np.array([c.frequency for c in CLASSES], dtype=np.float64)
    elif isinstance(class_fractions, Mapping):
        unknown = set(class_fractions) - set(CLASS_NAMES)
        if unknown:
            raise ValueError(f"unknown class names in class_fractions: {sorted(unknown)}")
        fr = np.array([float(class_fractions.get(c.name, 0.0)) for c in CLASSES], dtype=np.float64)
    else:
        fr = np.asarray(class_fractions, dtype=np.float64).ravel()
        if fr.size != _K:
            raise ValueError(f"class_fractions must have {_K} entries, got {fr.size}")
    if np.any(fr < 0) or fr.sum() <= 0:
        raise ValueError("class_fractions must be non-negative with a positive sum")
    return fr / fr.sum()


def _fill_order(fractions: np.ndarray) -> np.ndarray:
    """Class indices sorted rarest first (stable); the last one takes the remainder."""
    return np.argsort(fractions, kind="stable")


def _cubic_weights(
    n_out: int, start: int, factor: float, n_low: int, origin: int = 0, clamp: bool = True
) -> tuple[np.ndarray, int]:
    """Keys (a=-0.5) cubic-convolution interpolation matrix.

    Returns ``(W, lo)`` such that ``W @ low[lo:lo + W.shape[1]]`` samples the
    low-resolution signal at full-resolution pixel centres ``start .. start+n_out-1``.
    Global lattice sample ``i`` sits at full-resolution coordinate
    ``(i + 0.5) * factor - 0.5`` and is stored at ``low[i - origin]``.  With
    ``clamp`` the global lattice is ``0 .. n_low-1`` and taps are clamped to it.
    The weights depend only on global coordinates, so neighbouring windows (chunks)
    are seamless.
    """
    y = np.arange(start, start + n_out, dtype=np.float64)
    u = (y + 0.5) / factor - 0.5
    i0 = np.floor(u).astype(np.int64)
    t = u - i0
    # Keys kernel weights for taps i0-1 .. i0+2
    w = np.stack(
        [
            ((-0.5 * t + 1.0) * t - 0.5) * t,
            (1.5 * t - 2.5) * t * t + 1.0,
            ((-1.5 * t + 2.0) * t + 0.5) * t,
            (0.5 * t - 0.5) * t * t,
        ],
        axis=1,
    )
    taps = i0[:, None] + np.arange(-1, 3)[None, :]
    if clamp:
        taps = np.clip(taps, 0, n_low - 1)
    taps = taps - origin
    lo = int(taps.min())
    hi = int(taps.max()) + 1
    mat = np.zeros((n_out, hi - lo), dtype=np.float64)
    rows = np.repeat(np.arange(n_out), 4)
    np.add.at(mat, (rows, (taps - lo).ravel()), w.ravel())
    return mat.astype(np.float32), lo


def _upsample(
    low: np.ndarray,
    y0: int,
    x0: int,
    h: int,
    w: int,
    factor: float,
    origin: tuple[int, int] = (0, 0),
    clamp: bool = True,
) -> np.ndarray:
    """Cubic upsampling of a 2-D low-res field onto the window ``[y0:y0+h, x0:x0+w]``."""
    wy, ly = _cubic_weights(h, y0, factor, low.shape[0], origin[0], clamp)
    wx, lx = _cubic_weights(w, x0, factor, low.shape[1], origin[1], clamp)
    if ly < 0 or lx < 0 or ly + wy.shape[1] > low.shape[0] or lx + wx.shape[1] > low.shape[1]:
        raise ValueError("low-resolution field does not cover the requested window")
    sub = low[ly : ly + wy.shape[1], lx : lx + wx.shape[1]].astype(np.float32)
    return (wy @ sub) @ wx.T


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise normalised to zero mean / unit std."""
    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    f -= f.mean()
    s = f.std()
    return f / s if s > 0 else f


_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict = {"depth": 0, "limiter": None}


@contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run the (many, small) BLAS products of the upsampling single-threaded.

    Multi-threaded OpenBLAS is several times *slower* on these tiny products as soon
    as the CPU is shared with other work.  Uses :mod:`threadpoolctl` when it is
    installed (otherwise does nothing).  Re-entrant and thread-safe (reference
    counted): the original limits are restored when the last user exits.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up only
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0 and _BLAS_STATE["limiter"] is not None:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None


# ---- position-hashed noise (seamless across chunks) ---------------------------------
_M64 = (1 << 64) - 1


def _key(*parts: int) -> int:
    """Mix integers into a 64-bit key (splitmix64 on the python side)."""
    z = 0x6A09E667F3BCC908
    for p in parts:
        z = (z + (int(p) & _M64) + 0x9E3779B97F4A7C15) & _M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
    return z


def _hash_u01(key: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float32 noise that is a pure function of ``(key, y, x)``.

    ``ys`` and ``xs`` are broadcastable integer arrays of *global* coordinates, so any
    window of an arbitrarily large image can be generated independently.
    """
    y = np.asarray(ys, dtype=np.int64).astype(np.uint64)
    x = np.asarray(xs, dtype=np.int64).astype(np.uint64)
    z = y * np.uint64(0x9E3779B97F4A7C15) + x * np.uint64(0xC2B2AE3D27D4EB4F)
    z += np.uint64(key)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


_SQRT12 = np.float32(np.sqrt(12.0))


def _white(key: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Zero-mean unit-variance (uniform) white noise on a global pixel window."""
    u = _hash_u01(key, np.arange(y0, y0 + h)[:, None], np.arange(x0, x0 + w)[None, :])
    u -= np.float32(0.5)
    u *= _SQRT12
    return u


def _gauss_std(sigma: float, truncate: float) -> float:
    """Std of unit-variance 2-D white noise after scipy's separable Gaussian filter."""
    r = int(truncate * float(sigma) + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * x * x / float(sigma) ** 2)
    k /= k.sum()
    return float((k * k).sum())  # (sum k^2)^2 is the variance in 2-D


def _smooth_white(key: int, y0: int, x0: int, h: int, w: int, sigma: float) -> np.ndarray:
    """Seamless Gaussian-smoothed white noise (unit std) on a global pixel window."""
    r = int(2.5 * sigma + 0.5)
    f = _white(key, y0 - r, x0 - r, h + 2 * r, w + 2 * r)
    f = ndi.gaussian_filter(f, sigma, truncate=2.5)[r : r + h, r : r + w]
    f *= np.float32(1.0 / _gauss_std(sigma, 2.5))
    return f


def _lattice_field(key: int, y0: int, x0: int, h: int, w: int, factor: float, sigma: float):
    """Seamless smooth noise: hashed lattice noise (spacing ``factor`` px) smoothed with
    ``sigma`` lattice cells and cubic-upsampled onto the pixel window.  Unit std."""
    iy0 = int(np.floor((y0 + 0.5) / factor - 0.5)) - 1
    iy1 = int(np.floor((y0 + h - 0.5) / factor - 0.5)) + 3
    ix0 = int(np.floor((x0 + 0.5) / factor - 0.5)) - 1
    ix1 = int(np.floor((x0 + w - 0.5) / factor - 0.5)) + 3
    low = _smooth_white(key, iy0, ix0, iy1 - iy0, ix1 - ix0, sigma)
    return _upsample(low, y0, x0, h, w, factor, origin=(iy0, ix0), clamp=False)


def _layout_lowres(
    rng: np.random.Generator, low_shape: tuple[int, int], factor: float, scale: float = 1.0
) -> np.ndarray:
    """Low-resolution layout fields, one per class, shape ``(K, h, w)``, unit std."""
    out = np.empty((_K,) + tuple(low_shape), dtype=np.float32)
    for k in range(_K):
        s_big = max(_REGION_SIGMA[k] * scale / factor, 0.6)
        s_fine = max(0.35 * _REGION_SIGMA[k] * scale / factor, 0.5)
        f = (1.0 - _REGION_FINE[k]) * _smooth_noise(rng, low_shape, s_big)
        f += _REGION_FINE[k] * _smooth_noise(rng, low_shape, s_fine)
        out[k] = f / f.std()
    return out


def _thresholds(fields: np.ndarray, fractions: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Sequential exact-quantile thresholds (rarest class first).

    ``fields`` has shape ``(K, ...)``.  Returns ``t`` (length K) such that the
    sequential assignment in :func:`_assign` gives each class ``round(f_k * N)`` pixels
    (the last class in fill order gets ``t = -inf``).
    """
    order = _fill_order(fractions)
    flat = fields.reshape(_K, -1)
    remaining = np.ones(flat.shape[1], bool) if valid is None else valid.ravel().copy()
    n_total = int(remaining.sum())
    t = np.full(_K, -np.inf, dtype=np.float64)
    for k in order[:-1]:
        n_k = int(round(fractions[k] * n_total))
        vals = flat[k][remaining]
        if n_k <= 0 or vals.size == 0:
            t[k] = np.inf
            continue
        if n_k >= vals.size:
            t[k] = -np.inf
            remaining[:] = False
            continue
        kth = vals.size - n_k
        t[k] = float(np.partition(vals, kth)[kth])
        remaining &= ~(flat[k] >= t[k])
    return t


def _assign(
    fields: np.ndarray, thr: np.ndarray, fractions: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hard labels (0-based, int8) and soft class weights ``(K, H, W)`` (sum to 1)."""
    order = _fill_order(fractions)
    shape = fields.shape[1:]
    lab = np.full(shape, order[-1], dtype=np.int8)
    free_hard = np.ones(shape, bool)
    free_soft = np.ones(shape, np.float32)
    weights = np.zeros((_K,) + tuple(shape), np.float32)
    for k in order[:-1]:
        if not np.isfinite(thr[k]):
            if thr[k] == -np.inf:  # takes everything that is left
                lab[free_hard] = k
                free_hard[:] = False
                weights[k] = free_soft
                free_soft = np.zeros_like(free_soft)
            continue
        hit = fields[k] >= thr[k]
        lab[hit & free_hard] = k
        free_hard &= ~hit
        z = (fields[k] - np.float32(thr[k])) * np.float32(1.0 / taus[k])
        s = 0.5 + 0.5 * np.tanh(0.5 * np.clip(z, -30, 30))  # logistic
        weights[k] = s * free_soft
        free_soft = free_soft * (1.0 - s)
    weights[order[-1]] += free_soft
    return lab, weights


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _stain_params(rng: np.random.Generator) -> dict:
    """Per-image (per-slide) stain variation."""
    return {
        "h": float(rng.uniform(0.85, 1.15)),
        "e": float(rng.uniform(0.85, 1.15)),
        "d": float(rng.uniform(-0.004, 0.004)),
        "fiber_angle": float(rng.uniform(0, np.pi)),
        "noise": float(rng.uniform(1.5, 3.0)),
        "blur": float(rng.uniform(0.55, 0.85)),
    }
