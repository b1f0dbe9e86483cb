"""napari widgets of napari-dfa (docked from the Plugins menu).

Each widget lives in its own module and only wires the Qt-free core (training,
tiled inference, inspection) to napari layers; the heavy imports happen when a widget
is created, not when this package is imported.
"""

from __future__ import annotations

__all__ = ["DifficultyWidget", "FineTuneWidget", "ModelWidget", "SegmentWidget"]


def __getattr__(name: str):
    if name == "ModelWidget":
        from napari_dfa._widgets.model_widget import ModelWidget

        return ModelWidget
    if name == "FineTuneWidget":
        from napari_dfa._widgets.finetune_widget import FineTuneWidget

        return FineTuneWidget
    if name == "SegmentWidget":
        from napari_dfa._widgets.segment_widget import SegmentWidget

        return SegmentWidget
    if name == "DifficultyWidget":
        from napari_dfa._widgets.difficulty_widget import DifficultyWidget

        return DifficultyWidget
    raise AttributeError(name)
