"""Window renderer of the synthetic tissue generator (layout fields -> RGB + labels).

Private module, used by :mod:`napari_dfa.data.synthetic`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.color import hed2rgb

from napari_dfa.data._synth_classes import (
    _LYMPH,
    _MUCIN,
    _NECROSIS,
    _STROMA,
    _TAU_EASY,
    _TAU_HARD,
    _TUMOR,
)
from napari_dfa.data._synth_noise import _assign, _key, _lattice_field, _lerp, _smooth_white, _white
from napari_dfa.data._synth_nuclei import _nuclei

# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
_MARGIN = 16  # context (px) rendered around every window and cropped away
_WHITE = np.array([242.0, 240.0, 244.0], dtype=np.float32)  # RGB of bare glass


def _render(
    fields: np.ndarray,
    thr: np.ndarray,
    fractions: np.ndarray,
    difficulty: float,
    stain: dict,
    key: int,
    origin: tuple[int, int],
    tissue: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render an RGB window from full-resolution layout ``fields`` ``(K, H+2m, W+2m)``.

    ``origin`` holds the global coordinates of the top-left pixel of ``fields``
    (i.e. of the window *including* the margin ``m = _MARGIN``).  All textures are
    pure functions of ``(key, global pixel position)``, so adjacent windows of a
    large slide join without seams.  Returns the central ``(H, W)`` part:
    ``(image uint8 (H, W, 3), labels uint8 (H, W))``; labels are 1..K, or 0 where
    ``tissue`` (soft tissue mask in [0, 1], same shape as ``fields[0]``) is < 0.5.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    WH, WW = fields.shape[1:]
    oy, ox = int(origin[0]), int(origin[1])
    taus = _TAU_EASY + (_TAU_HARD - _TAU_EASY) * d
    lab, wts = _assign(fields, thr, fractions, taus)

    f32 = np.float32
    n_fine = _smooth_white(_key(key, 1), oy, ox, WH, WW, 0.8)
    n_med = _smooth_white(_key(key, 2), oy, ox, WH, WW, 2.5)
    lf = 8.0
    warp1 = _lattice_field(_key(key, 3), oy, ox, WH, WW, lf, 3.0)
    warp2 = _lattice_field(_key(key, 4), oy, ox, WH, WW, lf, 1.5)
    mott = _lattice_field(_key(key, 5), oy, ox, WH, WW, lf, 1.0)

    # wavy oriented fibres: stripes along level sets of a warped linear phase
    th = stain["fiber_angle"]
    gy = np.arange(oy, oy + WH, dtype=f32)[:, None]
    gx = np.arange(ox, ox + WW, dtype=f32)[None, :]
    lin = gy * f32(np.cos(th)) - gx * f32(np.sin(th))
    phi = lin + f32(9.0) * warp1 + f32(2.5) * warp2
    two_pi = f32(2 * np.pi)
    fib = 0.5 + 0.5 * np.sin(two_pi * phi / f32(6.0) + f32(1.3) * n_med)
    bundles = 0.5 + 0.5 * np.sin(two_pi * phi / f32(31.0) + f32(0.4) * n_med + f32(0.7) * mott)
    cleft = np.clip((f32(0.13) - bundles) * f32(8.0), 0, 1)  # white gaps between bundles

    # -------- per-class background (extracellular / cytoplasm) HED ---------------------
    Hb = np.zeros((WH, WW), f32)
    Eb = np.zeros((WH, WW), f32)
    Db = np.zeros((WH, WW), f32)

    def add(k, h, e, dd):
        w = wts[k]
        Hb.__iadd__(w * h)
        Eb.__iadd__(w * e)
        Db.__iadd__(w * dd)

    brk = np.clip(f32(0.5) + f32(0.6) * n_med, 0, 1)
    # stroma: eosin-rich oriented collagen
    e_str = f32(0.04) * (f32(0.45) + f32(0.7) * fib * np.sqrt(fib) * (f32(0.75) + f32(0.25) * brk))
    e_str *= 1 + f32(0.12) * mott
    e_str *= 1 - f32(0.85) * cleft
    add(_STROMA, f32(0.003) + f32(0.0015) * n_fine, e_str, f32(1.05) * e_str + f32(0.002))

    # tumour: pale pink-lilac finely granular cytoplasm
    e_tum = f32(0.017) * (1 + f32(0.18) * n_fine + f32(0.1) * mott)
    add(_TUMOR, f32(0.011) + f32(0.002) * n_med, e_tum, f32(0.018))

    # necrosis: stroma-like hue, broken / disordered fibrillar (fibrin-like) and granular
    # texture, slightly paler, with basophilic nuclear dust
    gran = np.clip(0.5 + 0.35 * n_fine, 0, 1)
    tex_n = f32(d) * (f32(0.65) * fib * brk + f32(0.35) * gran) + f32(1 - d) * gran
    e_nec = f32(_lerp(0.014, 0.030, d)) * (f32(0.55) + f32(0.7) * tex_n) * (1 + f32(0.2) * mott)
    h_nec = f32(_lerp(0.028, 0.010, d)) * (1 + f32(0.6) * n_fine).clip(0.2)
    add(_NECROSIS, h_nec, e_nec, f32(0.9) * e_nec + f32(0.004))

    # lymphocytes: scant cytoplasm between dense nuclei
    add(_LYMPH, f32(0.02) + f32(0.004) * n_fine, f32(0.012), f32(0.014))

    # mucin: pale bluish-grey lacy wisps (ridges of a smooth noise field)
    ridge = (warp2 + f32(0.35) * n_med) * f32(1 / 0.22)
    ridge = np.exp(-ridge * ridge)
    # (when hard: more eosinophilic, approaching pale necrosis / tumour cytoplasm)
    wisp = f32(0.6) + f32(_lerp(1.6, 0.9, d)) * ridge + f32(0.25) * n_fine
    h_muc = f32(_lerp(0.022, 0.013, d)) * wisp
    e_muc = f32(_lerp(0.0015, 0.013, d)) * wisp + f32(_lerp(0.0, 0.008, d))
    add(_MUCIN, h_muc, e_muc, f32(_lerp(0.002, 0.016, d)) * wisp)

    # -------- nuclei --------------------------------------------------------------------
    gyi = np.arange(oy, oy + WH, dtype=np.int32)[:, None] - oy
    gxi = np.arange(ox, ox + WW, dtype=np.int32)[None, :] - ox
    m, nh, ne, border = _nuclei(key, (oy, ox), wts, phi, (gyi, gxi), d, n_fine, n_med)
    Eb += f32(0.012) * border
    Hh = Hb + m * (nh - Hb)
    Ee = Eb + m * (ne - Eb)
    Dd = Db + m * (f32(0.045) - Db)

    # -------- slide-level effects -----------------------------------------------------
    thick = 1.0 + f32(0.07) * mott
    Hh *= f32(stain["h"]) * thick
    Ee *= f32(stain["e"]) * thick
    Dd = np.maximum(Dd + f32(stain["d"]), 0) * thick
    blur = stain["blur"]  # optical blur (D is smooth already)
    mg = _MARGIN
    inner = (slice(mg, WH - mg), slice(mg, WW - mg))
    hed = np.stack(
        [
            ndi.gaussian_filter(Hh, blur, truncate=2.5)[inner],
            ndi.gaussian_filter(Ee, blur, truncate=2.5)[inner],
            Dd[inner],
        ],
        axis=-1,
    )
    rgb = hed2rgb(hed).astype(f32) * f32(255.0)
    lab = lab[inner]
    if tissue is not None:
        t = tissue[inner][..., None].astype(f32)
        rgb = t * rgb + (1 - t) * _WHITE
        lab_out = np.where(tissue[inner] >= 0.5, lab + 1, 0).astype(np.uint8)
    else:
        lab_out = (lab + 1).astype(np.uint8)
    # sensor noise (hashed per global pixel and channel)
    h_, w_ = lab_out.shape
    for ch in range(3):
        rgb[..., ch] += _white(_key(key, 20 + ch), oy + mg, ox + mg, h_, w_) * f32(stain["noise"])
    img = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return img, lab_out
