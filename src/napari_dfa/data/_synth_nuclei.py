"""Nuclei of the synthetic tissue generator (seeded on hashed global grids).

Private module, used by :mod:`napari_dfa.data._synth_render`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_dfa.data._synth_classes import _LYMPH, _MUCIN, _NECROSIS, _STROMA, _TUMOR
from napari_dfa.data._synth_noise import _hash_u01, _key, _lerp

# --------------------------------------------------------------------------------------
# Nuclei
# --------------------------------------------------------------------------------------
# Per-class nucleus parameters:
#   spacing (px) of the jittered seed grid, keep probability, major semi-axis range,
#   minor/major ratio range, hematoxylin OD range, irregularity, chromatin granularity.
_NUC = {
    _STROMA: dict(spacing=17.0, keep=0.4, a=(5.0, 9.0), ratio=(0.2, 0.32), h=(0.10, 0.15), irr=0.06, chrom=0.15),
    _TUMOR: dict(spacing=13.0, keep=0.95, a=(4.2, 7.0), ratio=(0.65, 1.0), h=(0.07, 0.13), irr=0.18, chrom=0.35),
    _NECROSIS: dict(spacing=9.0, keep=0.5, a=(0.9, 2.3), ratio=(0.5, 1.0), h=(0.14, 0.22), irr=0.25, chrom=0.1),
    _LYMPH: dict(spacing=6.6, keep=0.93, a=(2.5, 3.3), ratio=(0.85, 1.0), h=(0.16, 0.22), irr=0.05, chrom=0.12),
    _MUCIN: dict(spacing=26.0, keep=0.3, a=(3.0, 5.0), ratio=(0.6, 1.0), h=(0.06, 0.11), irr=0.15, chrom=0.25),
}


def _nuclei(
    key: int,
    origin: tuple[int, int],
    weights: np.ndarray,
    phi: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
    difficulty: float,
    noise_fine: np.ndarray,
    noise_med: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render nuclei on a window whose top-left pixel has global coordinates ``origin``.

    Nuclei are seeded on per-class jittered grids in *global* coordinates; every seed
    attribute is a hash of ``(key, class, attribute, cell)``, so overlapping windows
    agree exactly.  A seed is kept with probability ``keep * weight_k(seed)``.

    Returns ``(mask, nuc_h, nuc_e, cell_border)`` where ``mask`` in [0, 1] is the
    soft nucleus coverage, ``nuc_h``/``nuc_e`` the nuclear stain ODs (valid where
    mask > 0) and ``cell_border`` a [0, 1] map of Voronoi cell borders of tumour cells.
    """
    H, W = weights.shape[1:]
    oy, ox = origin
    cols: dict[str, list[np.ndarray]] = {
        n: [] for n in ("y", "x", "cls", "a", "ratio", "h", "irr", "chrom", "ang", "nuy", "nux")
    }
    for k, p in _NUC.items():
        sp = p["spacing"]
        keep = p["keep"]
        if k == _NECROSIS:
            sp = _lerp(7.5, 10.0, difficulty)
            keep = _lerp(0.7, 0.45, difficulty)
        elif k == _MUCIN:  # more floating (tumour-like) cells when hard
            sp = _lerp(30.0, 12.0, difficulty)
            keep = _lerp(0.25, 0.5, difficulty)
        cy = np.arange(int(np.floor(oy / sp)), int(np.floor((oy + H - 1) / sp)) + 1)[:, None]
        cx = np.arange(int(np.floor(ox / sp)), int(np.floor((ox + W - 1) / sp)) + 1)[None, :]

        def u(attr: int, k=k, cy=cy, cx=cx) -> np.ndarray:
            return _hash_u01(_key(key, 101, k, attr), cy, cx).ravel()

        yy = np.round((cy + 0.5 + 0.9 * (u(0).reshape(cy.size, cx.size) - 0.5)) * sp).ravel()
        xx = np.round((cx + 0.5 + 0.9 * (u(1).reshape(cy.size, cx.size) - 0.5)) * sp).ravel()
        yi = yy.astype(np.int64) - oy
        xi = xx.astype(np.int64) - ox
        inside = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)
        ok = np.zeros(yi.size, bool)
        ok[inside] = u(2)[inside] < keep * weights[k, yi[inside], xi[inside]]
        n = int(ok.sum())
        if n == 0:
            continue
        a = p["a"][0] + (p["a"][1] - p["a"][0]) * u(3)[ok]
        ratio = p["ratio"][0] + (p["ratio"][1] - p["ratio"][0]) * u(4)[ok]
        h = p["h"][0] + (p["h"][1] - p["h"][0]) * u(5)[ok]
        ang = np.pi * u(6)[ok]
        r7 = u(7)[ok]
        r8 = u(8)[ok]
        if k == _NECROSIS:
            # pale "ghost" nuclei (karyolysis) besides pyknotic / karyorrhectic debris
            ghost = r7 < _lerp(0.15, 0.35, difficulty)
            a = np.where(ghost, 3.0 + 1.5 * r8, a)
            h = np.where(ghost, 0.025 + 0.025 * r8, h)
            # at high difficulty part of the debris is smeared, spindle-like
            smear = ~ghost & (r7 > 1.0 - 0.5 * difficulty)
            a = np.where(smear, 2.5 + 2.5 * r8, a)
            ratio = np.where(smear, 0.25 + 0.2 * r8, ratio)
        if k == _TUMOR:
            giant = r7 < 0.08  # pleomorphism: a few giant hyperchromatic nuclei
            a = np.where(giant, a * 1.35, a)
            h = np.where(giant, h * 1.25, h)
        aligned = np.full(n, k == _STROMA) | ((k == _NECROSIS) & (ratio < 0.5))
        if aligned.any():
            ys_, xs_ = yi[ok], xi[ok]
            gy_ = phi[np.minimum(ys_ + 1, H - 1), xs_] - phi[np.maximum(ys_ - 1, 0), xs_]
            gx_ = phi[ys_, np.minimum(xs_ + 1, W - 1)] - phi[ys_, np.maximum(xs_ - 1, 0)]
            fd = np.arctan2(gy_, gx_) + np.pi / 2  # perpendicular to grad(phi)
            ang = np.where(aligned, fd + 0.4 * (r8 - 0.5), ang)
        cols["y"].append(yi[ok])
        cols["x"].append(xi[ok])
        cols["cls"].append(np.full(n, k, np.int8))
        cols["a"].append(a)
        cols["ratio"].append(ratio)
        cols["h"].append(h)
        cols["irr"].append(np.full(n, p["irr"]))
        cols["chrom"].append(np.full(n, p["chrom"]))
        cols["ang"].append(ang)
        cols["nuy"].append(0.6 * (u(9)[ok] - 0.5))
        cols["nux"].append(0.6 * (u(10)[ok] - 0.5))
    zero = np.zeros((H, W), np.float32)
    if not cols["y"]:
        return zero, zero, zero, zero
    c_ = {n: np.concatenate(v) for n, v in cols.items()}
    f32 = np.float32
    ys, xs, cls = c_["y"], c_["x"], c_["cls"]
    a = c_["a"].astype(f32)
    ratio = c_["ratio"].astype(f32)
    n = ys.size

    # nearest seed (Voronoi cells); the elliptical distance to it is computed below
    id_img = np.full((H, W), -1, np.int32)
    id_img[ys, xs] = np.arange(n, dtype=np.int32)
    iy, ix = ndi.distance_transform_edt(id_img < 0, return_distances=False, return_indices=True)
    nid = id_img[iy, ix]
    gy, gx = grid
    dy = np.subtract(gy, iy, dtype=f32)
    dx = np.subtract(gx, ix, dtype=f32)
    del iy, ix
    ca = np.cos(c_["ang"]).astype(f32)[nid]
    sa = np.sin(c_["ang"]).astype(f32)[nid]
    ax = a[nid]
    bx = (a * ratio)[nid]
    uu = dx * ca + dy * sa
    vv = dy * ca - dx * sa
    ua = uu / ax
    vb = vv / bx
    d = np.sqrt(ua * ua + vb * vb)
    # irregular contour
    d *= 1.0 + c_["irr"].astype(f32)[nid] * noise_med
    mask = np.clip((1.0 - d) * np.maximum(bx, 1.0) + 0.5, 0.0, 1.0)
    # chromatin: granular, with membrane accentuation and nucleoli for tumour cells
    nh = c_["h"].astype(f32)[nid] * (1.0 + c_["chrom"].astype(f32)[nid] * noise_fine)
    c = cls[nid]
    tum = c == _TUMOR
    rim = (d - 0.85) * f32(1 / 0.12)
    rim = np.exp(-rim * rim)
    nh = np.where(tum, nh * (0.8 + 0.45 * rim), nh)
    dnx = ua - c_["nux"].astype(f32)[nid]
    dny = vb - c_["nuy"].astype(f32)[nid]
    nh = np.where(tum & (dnx * dnx + dny * dny < 0.04), nh * 1.6, nh)
    # nuclear eosin: lymphocytes are blue-black (scant eosin), pyknotic debris eosinophilic
    ne = np.where(c == _NECROSIS, f32(0.06), np.where(c == _LYMPH, f32(0.02), f32(0.045)))
    ne = ne.astype(f32)
    # tumour cell borders (Voronoi edges between neighbouring tumour cells)
    border = np.zeros((H, W), f32)
    border[1:, :] += (nid[1:, :] != nid[:-1, :]) & tum[1:, :] & tum[:-1, :]
    border[:, 1:] += (nid[:, 1:] != nid[:, :-1]) & tum[:, 1:] & tum[:, :-1]
    border = np.minimum(border, 1.0) * tum
    return mask.astype(f32), nh.astype(f32), ne, border
