"""zarr's chunk decoding and encoding in Rust (the ``zarrs`` package) where it is installed.

zarr 3's own codec pipeline runs every read and write through one asyncio event loop and
decodes in Python-level tasks, so a whole-slide run's reads stop scaling at one core's
worth of that loop however many threads ask (on a 16-core GPU machine window reads stayed
at 140-190 MP/s from 1 to 16 threads). ``zarrs`` (``zarrs.ZarrsCodecPipeline``) fetches and
decodes a request's chunks in Rust on its own thread pool, off the GIL, and gives the
same arrays. Arrays opened or created inside :func:`fast_codecs` keep that pipeline (zarr
binds an array's pipeline when the array object is made), and arrays it cannot handle (a
TIFF behind ``tifffile``'s zarr store, unusual codecs) fall back to zarr's own.

Set ``NAPARI_DFA_ZARRS=0`` to use zarr's pipeline everywhere.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import warnings
from collections.abc import Iterator

__all__ = ["PIPELINE", "fast_codecs", "zarrs_available"]

PIPELINE = "zarrs.ZarrsCodecPipeline"
# zarr's config is process-wide and ``config.set`` restores what it found on exit: two
# threads' overlapping blocks would leave zarrs' pipeline set for good, so blocks take turns
_LOCK = threading.RLock()


def zarrs_available() -> bool:
    """``zarrs`` is installed and not switched off with ``NAPARI_DFA_ZARRS=0``."""
    if os.environ.get("NAPARI_DFA_ZARRS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("zarrs") is not None


@contextlib.contextmanager
def fast_codecs() -> Iterator[None]:
    """zarr arrays made inside this block read and write through ``zarrs`` (where
    available; otherwise nothing changes). Keep the block to making array objects: one
    thread's block waits for another's."""
    if not zarrs_available():
        yield
        return
    import zarr

    with _LOCK, warnings.catch_warnings():
        # zarrs warns once per array it hands back to zarr's own pipeline; that is expected
        warnings.filterwarnings("ignore", message="Array is unsupported by ZarrsCodecPipeline")
        with zarr.config.set({"codec_pipeline.path": PIPELINE}):
            yield
