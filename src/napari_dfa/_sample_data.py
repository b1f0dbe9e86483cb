"""npe2 sample-data providers (nothing is downloaded: the data ships with the package or
is generated on the fly)."""

from __future__ import annotations

import numpy as np

from napari_dfa.layers import labels_colormap

__all__ = ["SLIDE", "sample_slide", "sample_tissue", "slide_mean_colors"]

# The generated whole-slide sample: 8192 x 8192 px, 30 % glass, 5 tissue classes.
SLIDE = {"shape": (8192, 8192), "chunk": 1024, "seed": 7, "background_fraction": 0.3}
SLIDE_SCRIBBLES = {"region": (3072, 3072, 5120, 5120), "fraction": 0.01, "seed": 7}
SLIDE_LEVELS = 5  # 8192, 4096, 2048, 1024, 512 px
# Mean RGB of glass and of each class at full resolution (what a true 2^k downsampling
# converges to), measured by slide_mean_colors() on the rendered slide; the coarse
# pyramid levels are painted with them (a test checks they still match the generator).
SLIDE_MEAN_COLORS = (
    (242, 240, 244),
    (204, 133, 171),
    (154, 97, 149),
    (187, 120, 165),
    (113, 82, 131),
    (196, 140, 186),
)


def sample_tissue():
    """The synthetic H&E sample: image, user-like scribbles and the ground truth."""
    from napari_dfa.sample import load_sample

    s = load_sample()
    cmap = labels_colormap(s.class_colors)
    features = {"class": ["unlabeled", *s.class_names]}
    return [
        (s.image, {"name": "tissue", "rgb": True}, "image"),
        (
            s.scribbles,
            {"name": "scribbles", "colormap": cmap, "features": features, "opacity": 0.8},
            "labels",
        ),
        (
            s.ground_truth,
            {
                "name": "ground truth",
                "colormap": cmap,
                "features": features,
                "opacity": 0.5,
                "visible": False,
            },
            "labels",
        ),
    ]


def _slide():
    from napari_dfa.data.synthetic import lazy_slide

    return lazy_slide(
        SLIDE["shape"],
        chunk=SLIDE["chunk"],
        seed=SLIDE["seed"],
        background_fraction=SLIDE["background_fraction"],
    )


def slide_mean_colors(max_chunks: int = 4) -> list[list[int]]:
    """Mean RGB of glass (label 0) and of each class on rendered chunks of the slide
    (chunks with the most classes first); used to regenerate ``SLIDE_MEAN_COLORS``."""
    image, labels = _slide()
    c = SLIDE["chunk"]
    small = np.asarray(labels[::16, ::16])
    s = c // 16
    grid = [(by, bx) for by in range(small.shape[0] // s) for bx in range(small.shape[1] // s)]
    grid.sort(key=lambda b: -len(np.unique(small[b[0] * s : (b[0] + 1) * s, b[1] * s : (b[1] + 1) * s])))
    sums, counts = np.zeros((6, 3)), np.zeros(6)
    for by, bx in grid[:max_chunks]:
        img = np.asarray(image.blocks[by, bx]).reshape(-1, 3).astype(np.float64)
        lab = np.asarray(labels.blocks[by, bx]).ravel()
        for k in range(6):
            sel = lab == k
            sums[k] += img[sel].sum(0)
            counts[k] += sel.sum()
    return [[int(round(v)) for v in sums[k] / max(counts[k], 1)] for k in range(6)]


def _preview_block(block: np.ndarray, block_info=None) -> np.ndarray:
    lut = np.asarray(SLIDE_MEAN_COLORS, np.float32)
    rgb = lut[block]
    loc = block_info[0]["chunk-location"] if block_info else (0, 0)
    rng = np.random.default_rng([SLIDE["seed"], *loc])
    rgb += rng.normal(0.0, 4.0, rgb.shape).astype(np.float32)  # a little grain, like averaged texture
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def sample_slide():
    """A generated 8192 x 8192 px H&E "whole slide" as a lazy multiscale image, with
    scribbles in a 2048 px region and the ground truth (hidden).

    Level 0 is rendered chunk by chunk as napari asks for it (about 1 s per 1024 px
    chunk on a small CPU). The coarser levels are a fast colour preview painted from
    the class layout with each class's mean colour (what a true downsampling converges
    to): zoomed out, the slide shows at once; segment and fine-tune at level 0.
    """
    from napari_dfa.data.scribbles import make_scribbles
    from napari_dfa.data.synthetic import CLASS_COLORS, CLASS_NAMES

    image, labels = _slide()
    label_levels = [labels] + [labels[:: 2**k, :: 2**k] for k in range(1, SLIDE_LEVELS)]
    levels = [image] + [
        lv.rechunk(512).map_blocks(_preview_block, new_axis=2, chunks=lv.rechunk(512).chunks + ((3,),), dtype=np.uint8)
        for lv in label_levels[1:]
    ]
    y0, x0, y1, x1 = SLIDE_SCRIBBLES["region"]
    scribbles = np.zeros(SLIDE["shape"], np.uint8)
    scribbles[y0:y1, x0:x1] = make_scribbles(
        np.asarray(labels[y0:y1, x0:x1]), fraction=SLIDE_SCRIBBLES["fraction"], seed=SLIDE_SCRIBBLES["seed"]
    )
    cmap = labels_colormap(CLASS_COLORS)
    features = {"class": ["unlabeled", *CLASS_NAMES]}
    meta = {"napari_dfa": {"sample": "slide", **SLIDE, "preview_levels": "levels >= 1 are a colour preview"}}
    return [
        (levels, {"name": "slide", "rgb": True, "multiscale": True, "metadata": meta}, "image"),
        (
            scribbles,
            {"name": "slide scribbles", "colormap": cmap, "features": features, "opacity": 0.9},
            "labels",
        ),
        (
            label_levels,
            {
                "name": "slide ground truth",
                "multiscale": True,
                "colormap": cmap,
                "features": features,
                "opacity": 0.5,
                "visible": False,
            },
            "labels",
        ),
    ]
