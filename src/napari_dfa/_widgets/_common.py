"""Wiring shared by the widgets: notifications, layer choices, workers, our own layers.

Only public napari API. Nothing here imports torch, dask or zarr.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

__all__ = [
    "OWNER_KEY",
    "default_threads",
    "image_levels",
    "layer_choices",
    "notify_error",
    "notify_exception",
    "notify_info",
    "notify_warning",
    "put_layer",
    "start_job",
    "start_task",
    "world_transform",
]

log = logging.getLogger("napari_dfa")

OWNER_KEY = "napari_dfa_role"  # metadata key marking the layers the widgets created


def notify_error(message: str) -> None:
    from napari.utils import notifications

    notifications.show_error(message)


def notify_warning(message: str) -> None:
    from napari.utils import notifications

    notifications.show_warning(message)


def notify_info(message: str) -> None:
    from napari.utils import notifications

    notifications.show_info(message)


def notify_exception(exc: BaseException, doing: str) -> None:
    """A failed job as an error notification: the message of a user error (it names the
    problem and the fix), or the exception with a request to report it."""
    from napari_dfa.errors import DFAError

    if isinstance(exc, (DFAError, ValueError)):
        notify_error(f"{doing} failed: {exc}")
    else:
        log.error("%s failed", doing, exc_info=exc)
        notify_error(
            f"{doing} failed with an unexpected {type(exc).__name__}: {exc}. Nothing was changed; "
            "please report this at the napari-dfa issue tracker"
        )


def default_threads() -> int:
    """torch CPU threads for jobs: all cores but one, which the viewer keeps."""
    return max(1, (os.cpu_count() or 2) - 1)


def layer_choices(viewer: Any, *types: type) -> Callable[[Any], list[tuple[str, Any]]]:
    """A magicgui ``choices`` callable: the viewer's layers of ``types`` by name, our
    own output layers last (they are rarely the input)."""

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        layers = [lay for lay in viewer.layers if isinstance(lay, types)]
        layers.sort(key=lambda lay: OWNER_KEY in lay.metadata)
        return [(lay.name, lay) for lay in layers]

    return choices


def image_levels(layer: Any) -> list[Any]:
    """The pyramid levels of an image/labels layer (one level when not multiscale)."""
    return list(layer.data) if layer.multiscale else [layer.data]


def world_transform(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, translate)`` of the layer's last two (y, x) axes."""
    return np.asarray(layer.scale, float)[-2:], np.asarray(layer.translate, float)[-2:]


def put_layer(viewer: Any, role: str, data: Any, kind: str, **kwargs: Any) -> Any:
    """Show ``data`` in the layer this plugin made for ``role``, or add it.

    Only layers whose metadata marks them as ours for that role are reused: the user's
    layers are never modified.
    """
    name = kwargs.get("name")
    for lay in viewer.layers:
        if lay.metadata.get(OWNER_KEY) == role and lay.name == name and lay.__class__.__name__.lower() == kind:
            lay.data = data
            for key in ("scale", "translate", "contrast_limits"):
                if key in kwargs:
                    setattr(lay, key, kwargs[key])
            return lay
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[OWNER_KEY] = role
    add = getattr(viewer, f"add_{kind}")
    return add(data, metadata=metadata, **kwargs)


def start_task(func: Callable[..., Any], *args: Any, on_return: Callable[[Any], None],
               doing: str, on_done: Callable[[], None] | None = None) -> Any:
    """Run a short function in a worker thread; its result goes to ``on_return`` (GUI thread)."""
    from napari.qt.threading import create_worker

    worker = create_worker(func, *args, _start_thread=False)
    worker.returned.connect(on_return)
    worker.errored.connect(lambda exc: notify_exception(exc, doing))
    if on_done is not None:
        worker.finished.connect(on_done)
    worker.start()
    return worker


def _close_quietly(gen: Generator) -> None:
    try:
        gen.close()
    except Exception:  # noqa: BLE001 - cleanup of a cancelled job must never raise
        log.exception("cleanup of a cancelled napari-dfa job failed")


def start_job(job: Generator, *, doing: str, on_yield: Callable[[Any], None],
              on_return: Callable[[Any], None], on_done: Callable[[], None]) -> Any:
    """Run a job generator in a napari thread worker.

    ``worker.quit()`` (our Cancel button or napari's task-status cancel) stops it at the
    next ``yield``; the job is then closed in a background thread so its own cleanup
    (thread pools, temporary files) never runs in the GUI thread.
    """
    from napari.qt.threading import create_worker

    def drive():
        return (yield from job)

    worker = create_worker(drive, _start_thread=False)
    worker.yielded.connect(on_yield)
    worker.returned.connect(on_return)
    worker.errored.connect(lambda exc: notify_exception(exc, doing))
    worker.aborted.connect(lambda: threading.Thread(target=_close_quietly, args=(job,), daemon=True).start())
    worker.finished.connect(on_done)
    worker.start()
    return worker
