"""Label values in files <-> class indices inside napari-dfa.

Inside napari-dfa annotations use ``0`` = unlabeled and ``1..K`` = classes. Files may
instead use every value as a class (``ignore_index=None``, e.g. ``0`` = background in a
fully annotated mask), or mark unlabeled pixels with 255 (``ignore_index=255``, classes
``0..K-1``): those values are shifted by one on the way in, and a model remembers the
file value of each class (``ModelConfig.label_values``) to write predictions with the
same values as its training masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_dfa.errors import InputError

__all__ = ["decode_prediction", "encode_labels", "label_values_for", "parse_ignore_index"]


def parse_ignore_index(value: str | int | None) -> int | None:
    """``0`` (default), ``255`` or ``None`` (every value is a class)."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    try:
        v = int(value)
    except ValueError as exc:
        raise InputError(f"--ignore-index must be 0, 255 or 'none', got {value!r}") from exc
    if v not in (0, 255):
        raise InputError(f"--ignore-index must be 0, 255 or 'none', got {v}")
    return v


def label_values_for(num_classes: int, ignore_index: int | None) -> list[int]:
    """File label value of each class."""
    return list(range(1, num_classes + 1)) if ignore_index == 0 else list(range(num_classes))


def encode_labels(labels: np.ndarray, ignore_index: int | None, num_classes: int | None = None) -> np.ndarray:
    """File labels -> internal (0 unlabeled, 1..K), checking the range."""
    arr = np.asarray(labels)
    if arr.size and arr.min() < 0:
        raise InputError("label images must not contain negative values")
    top = int(arr.max()) if arr.size else 0
    if ignore_index == 255:
        unlabeled = arr == 255
        top = int(arr[~unlabeled].max()) if (~unlabeled).any() else -1
        internal = np.where(unlabeled, 0, arr.astype(np.int64) + 1).astype(np.uint8)
        top += 1
    elif ignore_index is None:
        if top >= 255:
            raise InputError("with --ignore-index none, label values must be below 255")
        internal = arr.astype(np.uint8) + 1
        top += 1
    else:
        if top > 255:
            raise InputError(f"label value {top} is above 255; at most 255 classes are supported")
        internal = arr.astype(np.uint8)
    if num_classes is not None and top > num_classes:
        raise InputError(
            f"labels contain the value {top if ignore_index == 0 else top - 1}, but only "
            f"{num_classes} class name(s) were given; give one name per class (--classes)"
        )
    return internal


def decode_prediction(pred: np.ndarray, label_values: Sequence[int]) -> np.ndarray:
    """Internal class indices (1..K) -> file label values of the model."""
    lut = np.zeros(max(len(label_values) + 1, 256), np.uint8)
    lut[1 : len(label_values) + 1] = label_values
    return lut[np.asarray(pred, dtype=np.int64)]
