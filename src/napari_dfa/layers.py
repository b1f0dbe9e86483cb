"""Small helpers shared by the npe2 contributions and widgets (no napari import)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["labels_colormap"]


def labels_colormap(colors: Sequence[str], values: Sequence[int] | None = None) -> dict:
    """A direct label colormap for napari Labels: class ``i`` -> ``colors[i]``, 0 clear."""
    values = list(values) if values is not None else list(range(1, len(colors) + 1))
    cmap: dict = {None: "transparent", 0: "transparent"}
    for v, c in zip(values, colors):
        cmap[int(v)] = c
    return cmap
