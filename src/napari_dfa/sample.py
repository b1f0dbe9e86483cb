"""The shipped sample (synthetic H&E image + scribbles + ground truth) and default model.

Both ship with the package (no download): in a wheel under ``napari_dfa/_sample_data``,
in a source checkout under ``sample_data/`` at the repository root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_dfa.errors import DFAError

__all__ = [
    "DEFAULT_MODEL",
    "Sample",
    "default_model_dir",
    "load_default_model",
    "load_sample",
    "sample_data_dir",
]

DEFAULT_MODEL = "default_model"
SAMPLE_FILES = {
    "image": "tissue_image.png",
    "scribbles": "tissue_scribbles.png",
    "ground_truth": "tissue_ground_truth.png",
    "classes": "tissue_classes.json",
}


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8
    scribbles: np.ndarray  # (H, W) uint8, 0 = unlabeled
    ground_truth: np.ndarray  # (H, W) uint8, 1..K
    class_names: list[str]
    class_colors: list[str]


def sample_data_dir() -> Path:
    """Folder holding the shipped sample and default model."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sample_data", here.parents[1] / "sample_data"):
        if (candidate / SAMPLE_FILES["classes"]).is_file():
            return candidate
    raise DFAError(
        "the shipped sample data is missing from this installation; reinstall napari-dfa "
        "(pip install --force-reinstall napari-dfa)"
    )


def load_sample() -> Sample:
    """The synthetic H&E sample: image, scribbles (about 2 % of pixels) and ground truth."""
    import imageio.v3 as iio

    folder = sample_data_dir()
    meta = json.loads((folder / SAMPLE_FILES["classes"]).read_text())
    return Sample(
        image=np.asarray(iio.imread(folder / SAMPLE_FILES["image"]))[..., :3],
        scribbles=np.asarray(iio.imread(folder / SAMPLE_FILES["scribbles"])).astype(np.uint8),
        ground_truth=np.asarray(iio.imread(folder / SAMPLE_FILES["ground_truth"])).astype(np.uint8),
        class_names=list(meta["class_names"]),
        class_colors=list(meta["class_colors"]),
    )


def default_model_dir() -> Path:
    return sample_data_dir() / DEFAULT_MODEL


def load_default_model(device: str = "cpu"):
    """The shipped default DFA model (trained on the synthetic generator)."""
    from napari_dfa.checkpoint import load_model

    model = load_model(default_model_dir(), device=device)
    model.source = "default"
    return model
