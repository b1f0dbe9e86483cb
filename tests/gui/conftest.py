"""Fixtures for the widget tests: a viewer with the sample, docked widgets, captured
notifications, and tiny budgets (a CPU step takes ~0.3 s here; keep tests fast)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.needs_gl

TINY = {"steps": 3, "batch_size": 2, "crop_size": 64, "max_seconds": 0.0}


@pytest.fixture(scope="session")
def default_model():
    from napari_dfa.sample import load_default_model

    return load_default_model("cpu")


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


@pytest.fixture
def sample_viewer(viewer):
    viewer.open_sample("napari-dfa", "tissue")
    return viewer


@pytest.fixture
def dock(viewer):
    def _dock(name: str):
        _, widget = viewer.window.add_plugin_dock_widget("napari-dfa", name)
        return widget

    return _dock


@pytest.fixture
def with_model(viewer, default_model):
    """Make a copy of the shipped default model the viewer's current model."""
    from napari_dfa._widgets.state import model_state
    from napari_dfa.model.adapt import copy_model

    state = model_state(viewer)
    state.set_model(copy_model(default_model), "shipped default model")
    return state


@pytest.fixture
def notes():
    """Notifications shown during the test: list of (severity name, message)."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    def get(severity: str | None = None):
        out = [(str(n.severity).lower(), str(n.message)) for n in notification_manager.records[start:]]
        return [m for s, m in out if severity is None or severity in s]

    return get


def tiny(widget, **kw):
    """Set the Fine-tune widget to a tiny budget."""
    for key, value in {**TINY, **kw}.items():
        getattr(widget, key).value = value


def wait_idle(qtbot, widget, timeout=60_000):
    """Wait until the widget's worker finished (and its callbacks ran)."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def snapshot(layer):
    """A cheap fingerprint of a user layer, to check it was not modified."""
    import numpy as np

    data = layer.data
    arr = np.asarray(data[0] if layer.multiscale else data) if not hasattr(data, "dask") else None
    return (
        layer.name,
        layer.__class__.__name__,
        tuple(layer.scale),
        tuple(layer.translate),
        None if arr is None else (arr.shape, arr.dtype.str, hash(arr.tobytes())),
    )


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
