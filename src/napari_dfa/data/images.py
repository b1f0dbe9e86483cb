"""Checking and normalising user images and annotations (numpy or dask).

Every problem raises :class:`~napari_dfa.errors.InputError` naming the array, what is
wrong and how to fix it. Nothing here modifies the caller's arrays.
"""

from __future__ import annotations

import numpy as np

from napari_dfa.errors import InputError

__all__ = ["check_image", "check_labels", "to_rgb_uint8"]


def check_image(image, name: str = "image"):
    """Validate an RGB image shape ``(H, W, 3)`` (or RGBA) and return it unchanged.

    Grayscale, stacks and time series are refused with a reason; a lazy (dask) image
    stays lazy.
    """
    shape = tuple(image.shape)
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1):
        raise InputError(
            f"{name} is grayscale {shape}; DFA models need RGB H&E images (H, W, 3). "
            "Open the colour image, or convert it to RGB first"
        )
    if len(shape) != 3:
        raise InputError(
            f"{name} has shape {shape}; expected one RGB image (H, W, 3). For a stack or time "
            "series, segment one plane at a time"
        )
    if shape[-1] not in (3, 4):
        if shape[0] in (3, 4) and shape[-1] > 4:
            raise InputError(
                f"{name} is channel-first {shape}; expected channels last (H, W, 3): "
                "transpose it (e.g. numpy.moveaxis(image, 0, -1))"
            )
        raise InputError(f"{name} has {shape[-1]} channels; expected RGB (3) or RGBA (4)")
    if shape[0] < 1 or shape[1] < 1:
        raise InputError(f"{name} is empty {shape}")
    return image


def to_rgb_uint8(image, name: str = "image") -> np.ndarray:
    """A copy of ``image`` as RGB uint8 ``(H, W, 3)``.

    RGBA drops alpha; uint16 is scaled by 257 (full range); floats in ``[0, 1]`` are
    scaled by 255, floats in ``[0, 255]`` are rounded; NaN/inf are refused.
    """
    check_image(image, name)
    arr = np.asarray(image)[..., :3]
    if arr.dtype == np.uint8:
        return np.array(arr, copy=True)
    if arr.dtype == np.uint16:
        return (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains NaN or infinite pixels; fix or mask them before segmenting")
        hi = float(arr.max()) if arr.size else 0.0
        lo = float(arr.min()) if arr.size else 0.0
        if lo < 0 or hi > 255:
            raise InputError(
                f"{name} is float with values in [{lo:.3g}, {hi:.3g}]; expected [0, 1] or [0, 255]. "
                "Rescale it to 8-bit RGB"
            )
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        hi = int(arr.max()) if arr.size else 0
        if arr.min() < 0 or hi > 255:
            raise InputError(f"{name} has integer values outside 0..255 ({arr.dtype}); convert it to 8-bit RGB")
        return arr.astype(np.uint8)
    raise InputError(f"{name} has unsupported dtype {arr.dtype}; convert it to 8-bit RGB")


def check_labels(labels, image_shape: tuple[int, ...], num_classes: int | None = None, name: str = "labels"):
    """Validate an annotation image against its image: 2-D, same (H, W), integer values.

    Returns the labels as given (numpy stays numpy, dask stays dask).
    """
    shape = tuple(labels.shape)
    if len(shape) != 2:
        raise InputError(f"{name} has shape {shape}; expected a 2-D label image (H, W)")
    if shape != tuple(image_shape[:2]):
        raise InputError(
            f"{name} shape {shape} differs from the image shape {tuple(image_shape[:2])}; "
            "paint the annotations on the image they belong to"
        )
    dtype = np.dtype(labels.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.dtype(bool)):
        raise InputError(f"{name} has dtype {dtype}; expected integer label values (0 = unlabeled)")
    if isinstance(labels, np.ndarray) and labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:
            raise InputError(f"{name} has negative values; use 0 for unlabeled and 1..K for classes")
        if num_classes is not None and hi > num_classes:
            raise InputError(
                f"{name} has label {hi} but the model has only {num_classes} classes; "
                "add class names for the extra labels or relabel them"
            )
    return labels
