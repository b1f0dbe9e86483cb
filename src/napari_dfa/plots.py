"""Figures: label overlays and the learned-bias chart (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["bias_figure", "colorize", "overlay", "save_bias_chart", "save_overlay"]


def _rgb(hex_color: str) -> np.ndarray:
    h = hex_color.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32)


def colorize(labels: np.ndarray, colors: Sequence[str], values: Sequence[int] | None = None) -> np.ndarray:
    """RGB image of a label map (class ``i`` has label ``values[i]``, default ``i + 1``)."""
    values = list(values) if values is not None else list(range(1, len(colors) + 1))
    lut = np.zeros((256, 3), np.float32)
    for v, c in zip(values, colors):
        lut[v] = _rgb(c)
    return lut[np.asarray(labels, dtype=np.int64)].astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, colors: Sequence[str], alpha: float = 0.45, values=None):
    """Labels blended over the image; unlabeled (0, when not a class value) left clear."""
    values = list(values) if values is not None else list(range(1, len(colors) + 1))
    col = colorize(labels, colors, values).astype(np.float32)
    mask = np.isin(labels, values)[..., None]
    img = image[..., :3].astype(np.float32)
    out = np.where(mask, (1 - alpha) * img + alpha * col, img)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_overlay(
    path: str | Path,
    image: np.ndarray,
    panels: dict[str, np.ndarray],
    class_names: Sequence[str],
    colors: Sequence[str],
    values=None,
) -> Path:
    """Side-by-side figure: the image and each label map overlaid on it, with a legend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = 1 + len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), dpi=110)
    axes = np.atleast_1d(axes)
    axes[0].imshow(image[..., :3])
    axes[0].set_title("image")
    for ax, (title, lab) in zip(axes[1:], panels.items()):
        ax.imshow(overlay(image, lab, colors, values=values))
        ax.set_title(title)
    for ax in axes:
        ax.axis("off")
    handles = [Patch(color=c, label=nm) for nm, c in zip(class_names, colors)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def bias_figure(class_names: Sequence[str], bias_init: Sequence[float], bias: Sequence[float], ax=None):
    """Grouped bars: DFA bias at initialisation (log-frequency prior) vs learned."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 3.6), dpi=110)
    x = np.arange(len(class_names))
    ax.bar(x - 0.2, bias_init, 0.4, label="prior (init)", color="#9e9e9e")
    ax.bar(x + 0.2, bias, 0.4, label="learned", color="#3f51b5")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, class_names, rotation=20, ha="right")
    ax.set_ylabel("attention bias b_c")
    ax.set_title("DFA bias per class: larger = more attention (harder / rarer)")
    ax.legend(frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def save_bias_chart(path: str | Path, class_names, bias_init, bias) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = bias_figure(class_names, bias_init, bias)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
