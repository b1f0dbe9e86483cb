"""npe2 sample-data providers (nothing is downloaded: the data ships with the package)."""

from __future__ import annotations

from napari_dfa.layers import labels_colormap

__all__ = ["sample_tissue"]


def sample_tissue():
    """The synthetic H&E sample: image, user-like scribbles and the ground truth."""
    from napari_dfa.sample import load_sample

    s = load_sample()
    cmap = labels_colormap(s.class_colors)
    features = {"class": ["unlabeled", *s.class_names]}
    return [
        (s.image, {"name": "tissue", "rgb": True}, "image"),
        (s.scribbles, {"name": "scribbles", "colormap": cmap, "features": features, "opacity": 0.8}, "labels"),
        (
            s.ground_truth,
            {"name": "ground truth", "colormap": cmap, "features": features, "opacity": 0.5, "visible": False},
            "labels",
        ),
    ]
