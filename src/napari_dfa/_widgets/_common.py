"""Wiring shared by the widgets: notifications, layer choices, workers, our own layers.

Only public napari API. Nothing here imports torch, dask or zarr.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

__all__ = [
    "ACTIVITY_TIP",
    "visible_region",
    "fit_table_height",
    "OWNER_KEY",
    "Throttle",
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
ACTIVITY_TIP = (
    "also show the progress in napari's activity dock. Off by default: its animated 'in progress' "
    "indicator redraws the window ~30 times a second, which made training 7x slower where the "
    "window is drawn in software (remote desktop, VNC, Xvfb; benchmarks/gui_latency.py)"
)


class Throttle:
    """``ready()`` is true at most once per ``interval`` seconds (first call: true).

    Each repaint of a dock costs GUI-thread time (tens of ms when the window is composed
    in software, e.g. under Xvfb), so progress is shown a few times a second, not per step.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def ready(self) -> bool:
        now = time.perf_counter()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def fit_table_height(table: Any, max_rows: int = 12) -> None:
    """Make a QTableWidget exactly as tall as its rows (up to ``max_rows``), so a dock
    does not waste space below a short table."""
    table.resizeRowsToContents()
    rows = min(table.rowCount(), max_rows)
    height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth() + 4
    height += sum(table.rowHeight(r) for r in range(rows)) if rows else 30
    if table.rowCount() > max_rows:
        height += table.horizontalScrollBar().sizeHint().height()
    table.setFixedHeight(height)


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


def visible_region(layer: Any, max_side: int):
    """The part of an image layer in view, as a level-0 :class:`~napari_dfa.data.regions.Region`
    of at most ``max_side`` px a side (centred on the view)."""
    from napari_dfa.data.regions import view_region

    level = layer.data_level if layer.multiscale else 0
    down = layer.downsample_factors[level][-2:] if layer.multiscale else (1.0, 1.0)
    return view_region(layer.corner_pixels, down, image_levels(layer)[0].shape[:2], max_side)


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


class _Failed:
    """A job's exception, returned instead of raised: napari would otherwise also relay
    it as a raw traceback notification next to ours."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _guard(callback: Callable[..., None]) -> Callable[..., None]:
    """A GUI callback that does nothing once its widget was closed (deleted by Qt)."""

    def guarded(*args: Any) -> None:
        try:
            callback(*args)
        except RuntimeError as exc:
            if "has been deleted" not in str(exc):
                raise

    return guarded


def _deliver(doing: str, on_return: Callable[[Any], None]) -> Callable[[Any], None]:
    def deliver(result: Any) -> None:
        if isinstance(result, _Failed):
            notify_exception(result.exc, doing)
        else:
            on_return(result)

    return _guard(deliver)


def start_task(
    func: Callable[..., Any],
    *args: Any,
    on_return: Callable[[Any], None],
    doing: str,
    on_done: Callable[[], None] | None = None,
) -> Any:
    """Run a short function in a worker thread; its result goes to ``on_return`` (GUI
    thread), a failure to an error notification."""
    from napari.qt.threading import create_worker

    def run() -> Any:
        try:
            return func(*args)
        except Exception as exc:  # noqa: BLE001 - reported as a notification
            return _Failed(exc)

    worker = create_worker(
        run, _start_thread=False, _ignore_errors=True, _connect={"returned": _deliver(doing, on_return)}
    )
    if on_done is not None:
        worker.finished.connect(_guard(on_done))
    worker.start()
    return worker


def _close_quietly(gen: Generator) -> None:
    try:
        gen.close()
    except Exception:  # noqa: BLE001 - cleanup of a cancelled job must never raise
        log.exception("cleanup of a cancelled napari-dfa job failed")


def start_job(
    job: Generator,
    *,
    doing: str,
    on_yield: Callable[[Any], None],
    on_return: Callable[[Any], None],
    on_done: Callable[[], None],
) -> Any:
    """Run a job generator in a napari thread worker.

    ``worker.quit()`` (our Cancel button or napari's task-status cancel) stops it at the
    next ``yield``; the job is then closed in a background thread so its own cleanup
    (thread pools, temporary files) never runs in the GUI thread. A failure becomes an
    error notification.
    """
    from napari.qt.threading import create_worker

    def drive():
        try:
            return (yield from job)
        except Exception as exc:  # noqa: BLE001 - reported as a notification
            return _Failed(exc)

    worker = create_worker(
        drive,
        _start_thread=False,
        _connect={"yielded": _guard(on_yield), "returned": _deliver(doing, on_return)},
    )
    worker.aborted.connect(lambda: threading.Thread(target=_close_quietly, args=(job,), daemon=True).start())
    worker.finished.connect(_guard(on_done))
    worker.start()
    return worker
