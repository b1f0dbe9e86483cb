"""The current model of a viewer, shared by the napari-dfa widgets (Qt-free).

One :class:`ModelState` per viewer (:func:`model_state`), not one per process: two
viewers can hold two different models. Widgets subscribe with :meth:`ModelState.connect`
and are told whenever the model changes (loaded, fine-tuned, reset).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["ModelState", "model_state"]

Callback = Callable[["ModelState"], None]


class ModelState:
    """The current model and where it came from; callbacks run on every change.

    Call :meth:`set_model` from the GUI thread only (callbacks update widgets).
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.source: str = ""
        self._callbacks: list[Callable[[], Callback | None]] = []

    @property
    def has_model(self) -> bool:
        return self.model is not None

    def set_model(self, model: Any, source: str) -> None:
        """Make ``model`` the current model; ``source`` says where it came from."""
        self.model = model
        self.source = source
        if model is not None:
            model.source = source  # recorded as "started_from" by the next fine-tune
        for ref in list(self._callbacks):
            cb = ref()
            if cb is None:
                self._callbacks.remove(ref)
            else:
                cb(self)

    def connect(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(state)`` after every change; returns a disconnect function.

        Bound methods are held weakly, so a widget that subscribed never outlives its
        dock (the state lives as long as its viewer)."""
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            ref: Callable[[], Callback | None] = weakref.WeakMethod(callback)
        else:
            ref = lambda: callback  # noqa: E731 - a plain function is held strongly
        self._callbacks.append(ref)

        def disconnect() -> None:
            if ref in self._callbacks:
                self._callbacks.remove(ref)

        return disconnect

    def describe(self) -> dict[str, Any]:
        """Classes, colours and provenance of the current model (for display)."""
        if self.model is None:
            return {}
        cfg = self.model.config
        summary = getattr(self.model, "training_summary", None) or {}
        return {
            "source": self.source,
            "folder": getattr(self.model, "folder", None),
            "class_names": list(cfg.class_names),
            "class_colors": list(cfg.class_colors),
            "bias_placement": cfg.bias_placement,
            "bias_init": cfg.bias_init,
            "bias_learnable": cfg.bias_learnable,
            "backbone": getattr(cfg, "backbone", "compact"),
            "encoder_weights": getattr(cfg, "encoder_weights", ""),
            "steps": summary.get("steps"),
            "final_loss": summary.get("final_loss"),
            "date": summary.get("date"),
            "device": summary.get("device"),
        }


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_state(viewer: Any) -> ModelState:
    """The :class:`ModelState` of ``viewer`` (created on first use, dropped with the viewer).

    Widgets receive the viewer wrapped in napari's public-only proxy (a new proxy per
    widget); the state is keyed by the wrapped viewer so all widgets of one viewer share it.
    """
    key = getattr(viewer, "__wrapped__", viewer)
    state = _STATES.get(key)
    if state is None:
        state = _STATES[key] = ModelState()
    return state
