"""Plain image files (PNG, JPEG, TIFF) in and label images out, with clear errors.

Outputs are written atomically: to a temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from napari_dfa.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "pair_by_stem",
    "read_image",
    "read_labels",
    "write_image",
    "write_text",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def list_images(path: str | Path, what: str = "images") -> list[Path]:
    """Image files at ``path``: the file itself, or the image files of a folder (sorted)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} path {path} does not exist; check the path")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


def pair_by_stem(images: str | Path, labels: str | Path) -> list[tuple[Path, Path]]:
    """Pair image and label files by file stem (``a.png`` with ``a.tif``)."""
    imgs = list_images(images, "images")
    labs = list_images(labels, "labels")
    if len(imgs) == 1 and len(labs) == 1:
        return [(imgs[0], labs[0])]
    by_stem = {p.stem: p for p in labs}
    pairs, missing = [], []
    for img in imgs:
        if img.stem in by_stem:
            pairs.append((img, by_stem[img.stem]))
        else:
            missing.append(img.name)
    if missing:
        raise InputError(
            f"no label file for {len(missing)} image(s) ({', '.join(missing[:3])}) in {labels}; "
            "label files must have the same file stem as their image"
        )
    return pairs


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into a numpy array (as stored: no conversion)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {path} does not exist; check the path")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {path}: {first}; is it a valid image file?") from exc


def read_labels(path: str | Path) -> np.ndarray:
    """Read a single-channel integer label image."""
    arr = read_image(path)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and np.all(arr[..., :3] == arr[..., :1]):
        arr = arr[..., 0]  # grey stored as RGB(A)
    if arr.ndim != 2:
        raise InputError(
            f"label file {path} has shape {arr.shape}; expected a single-channel label image "
            "(0 = unlabeled, 1..K = classes), not a colour image"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise InputError(f"label file {path} has dtype {arr.dtype}; expected integer labels")
    return arr


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write a PNG/TIFF atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        raise InputError(f"cannot write {path}: use .png, .tif or .tiff")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=parent)
        os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write to {parent}: {exc}; choose a writable output folder") from exc
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, array, compression="zlib")
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp, array, extension=suffix)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write to {path.parent}: {exc}; choose a writable location") from exc
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
