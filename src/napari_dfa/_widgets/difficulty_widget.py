"""The Class difficulty widget: the learned DFA bias next to its prior, per-class
cross-attention maps and a per-pixel difficulty map over the image."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from napari_dfa._widgets._common import (
    default_threads,
    fit_table_height,
    image_levels,
    layer_choices,
    notify_error,
    put_layer,
    start_task,
    visible_region,
    world_transform,
)
from napari_dfa._widgets.state import ModelState, model_state
from napari_dfa.errors import DFAError, InputError

__all__ = ["DifficultyWidget"]

VIEW = "current view"
MEAN = "mean over heads"
COLUMNS = ("class", "prior \u03c0", "\u2212log \u03c0", "init", "learned", "drift", "relative drift")


class DifficultyWidget(Container):
    """Bias chart + table of the current model; attention and difficulty map layers."""

    def __init__(self, napari_viewer: Any) -> None:
        from napari.layers import Image, Shapes

        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.state: ModelState = model_state(napari_viewer)
        shapes = layer_choices(napari_viewer, Shapes)
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, Image))
        self.region = ComboBox(
            label="region",
            choices=lambda w: [(VIEW, VIEW), *shapes(w)],
            tooltip="the visible part of the image, or the box around a Shapes layer's selected (else last) shape",
        )
        self.max_side = SpinBox(
            label="max px",
            min=64,
            max=8192,
            step=64,
            value=1024,
            tooltip="larger regions keep their central part",
        )
        self.layer = SpinBox(label="decoder layer", min=-1, max=-1, value=-1, tooltip="-1 = last")
        self.head = ComboBox(label="head", choices=self._head_choices, value=MEAN)
        self.attention_button = PushButton(text="Attention maps")
        self.kind = ComboBox(label="difficulty", choices=["entropy", "margin", "bias"], value="entropy")
        self.difficulty_button = PushButton(text="Difficulty map")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.extend(
            [
                Container(widgets=[self.image, self.region, self.max_side], labels=True),
                Container(widgets=[self.layer, self.head, self.attention_button], layout="horizontal", labels=True),
                Container(widgets=[self.kind, self.difficulty_button], layout="horizontal", labels=True),
                self.status,
            ]
        )
        from napari_dfa._widgets._plots import BiasChart

        self.chart = BiasChart()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.native.layout().insertWidget(0, self.chart.canvas)
        self.native.layout().insertWidget(1, self.table)
        self.native.layout().addStretch(1)
        self._workers: list[Any] = []
        self.attention_button.changed.connect(self.show_attention)
        self.difficulty_button.changed.connect(self.show_difficulty)
        self.state.connect(self._on_model_changed)
        self.reset_choices()
        self.refresh()

    # --- bias readout ----------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a job of this dock is running."""
        return bool(self._workers)

    def _on_model_changed(self, _state: Any = None) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Redraw the bias chart and table, and the layer/head choices, for the current model."""
        from napari_dfa.inspect import bias_table

        if not self.state.has_model:
            self.chart.show([], [], [])
            self.table.setRowCount(0)
            fit_table_height(self.table)
            self.status.value = "No model yet: load one in the Model widget or fine-tune one."
            return
        model = self.state.model
        rows = bias_table(model)
        self.chart.show([r.name for r in rows], [r.init for r in rows], [r.learned for r in rows])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = (
                r.name,
                f"{r.prior:.3f}",
                f"{r.neg_log_prior:.2f}",
                f"{r.init:+.2f}",
                f"{r.learned:+.2f}",
                f"{r.drift:+.2f}",
                f"{r.relative_drift:+.2f}",
            )
            for j, text in enumerate(values):
                item = QTableWidgetItem(text)
                if j == 0:
                    item.setData(Qt.ItemDataRole.DecorationRole, QColor(r.color))  # a colour swatch
                self.table.setItem(i, j, item)
        fit_table_height(self.table)
        n_layers = model.config.dec_layers
        self.layer.min, self.layer.max = -n_layers, n_layers - 1
        self.head.reset_choices()
        self.status.value = (
            f"model: {self.state.source}. Relative drift > 0: the class got more attention "
            "than its rarity implied (harder than its frequency)."
        )

    def _head_choices(self, _widget: Any = None) -> list[str]:
        heads = self.state.model.config.num_heads if self.state.has_model else 0
        return [MEAN, *[str(h) for h in range(heads)]]

    # --- maps ------------------------------------------------------------------------
    def _region(self):
        from napari_dfa.data.regions import view_region

        layer = self.image.value
        if layer is None:
            raise InputError("there is no image layer; open an RGB H&E image first")
        if not layer.rgb:
            raise InputError(f"image layer '{layer.name}' is not RGB; the maps need the RGB H&E image")
        level0 = image_levels(layer)[0]
        shape = level0.shape[:2]
        side = self.max_side.value
        if self.region.value == VIEW:
            region = visible_region(layer, side)
        else:
            shapes = self.region.value
            if not len(shapes.data):
                raise InputError(f"shapes layer '{shapes.name}' has no shapes; draw a rectangle over the region")
            idx = sorted(shapes.selected_data) or [len(shapes.data) - 1]
            verts = np.concatenate([np.asarray(shapes.data[i])[:, -2:] for i in idx])
            s_scale, s_trans = world_transform(shapes)
            i_scale, i_trans = world_transform(layer)
            px = (verts * s_scale + s_trans - i_trans) / i_scale
            lo, hi = np.floor(px.min(0)).astype(int), np.ceil(px.max(0)).astype(int) + 1
            region = view_region([lo, hi - 1], (1.0, 1.0), shape, side)
        if not region.size:
            raise InputError("the region is outside the image; pan to the image or choose another region")
        return layer, level0, region

    def _run(self, func: Any, *args: Any, doing: str, on_return: Any) -> Any:
        worker = start_task(
            func,
            *args,
            doing=doing,
            on_return=on_return,
            on_done=lambda: self._workers.remove(worker) if worker in self._workers else None,
        )
        self._workers.append(worker)
        return worker

    def _model_or_error(self):
        if not self.state.has_model:
            raise InputError("there is no current model; load one in the Model widget or fine-tune one first")
        return self.state.model

    def show_attention(self) -> Any:
        """Per-class cross-attention maps of the region as Image layers over the image."""
        from napari_dfa._widgets._jobs import attention_job

        try:
            model = self._model_or_error()
            layer, level0, region = self._region()
        except DFAError as exc:
            notify_error(str(exc))
            return None
        head = None if self.head.value == MEAN else int(self.head.value)
        self.status.value = f"computing attention maps of {region.shape[0]} x {region.shape[1]} px ..."
        return self._run(
            attention_job,
            model,
            level0,
            region,
            self.layer.value,
            head,
            default_threads(),
            doing="Attention maps",
            on_return=lambda am: self._add_attention(layer, am),
        )

    def _add_attention(self, layer: Any, am: Any) -> None:
        from napari.utils.colormaps import Colormap

        scale, translate = world_transform(layer)
        colors = self.state.model.config.class_colors if self.state.has_model else []
        for k, name in enumerate(am.class_names):
            m = am.maps[k]
            hexc = colors[k] if k < len(colors) else "#ffffff"
            rgb = [int(hexc[i : i + 2], 16) / 255 for i in (1, 3, 5)]
            cmap = Colormap([[0, 0, 0, 1], [*rgb, 1]], name=f"dfa {name}")
            put_layer(
                self.viewer,
                "attention",
                m,
                "image",
                name=f"attention: {name}",
                colormap=cmap,
                blending="additive",
                scale=scale * np.asarray(am.scale),
                opacity=0.8,
                translate=translate + scale * np.asarray(am.translate),
                contrast_limits=(0.0, float(np.percentile(m, 99.5)) or float(m.max()) or 1.0),
                gamma=0.6,
                interpolation2d="linear",
            )
        head = "mean over heads" if am.head is None else f"head {am.head}"
        self.status.value = (
            f"attention maps: decoder layer {am.layer}, {head}, stride {am.stride} px "
            f"({len(am.class_names)} layers 'attention: <class>')"
        )

    def show_difficulty(self) -> Any:
        """A per-pixel difficulty map (entropy / margin / bias) of the region as an Image layer."""
        from napari_dfa._widgets._jobs import difficulty_job

        try:
            model = self._model_or_error()
            layer, level0, region = self._region()
        except DFAError as exc:
            notify_error(str(exc))
            return None
        kind = self.kind.value
        self.status.value = f"computing the {kind} map of {region.shape[0]} x {region.shape[1]} px ..."
        return self._run(
            difficulty_job,
            model,
            level0,
            region,
            kind,
            default_threads(),
            doing="Difficulty map",
            on_return=lambda m: self._add_difficulty(layer, region, kind, m),
        )

    def _add_difficulty(self, layer: Any, region: Any, kind: str, m: np.ndarray) -> None:
        scale, translate = world_transform(layer)
        lo, hi = (float(m.min()), float(m.max())) if kind == "bias" else (0.0, 1.0)
        put_layer(
            self.viewer,
            "difficulty",
            m,
            "image",
            name=f"difficulty ({kind})",
            colormap="inferno",
            opacity=0.6,
            scale=scale,
            translate=translate + scale * np.asarray(region.origin),
            contrast_limits=(lo, hi if hi > lo else lo + 1e-6),
        )
        self.status.value = (
            f"difficulty ({kind}) of {region.shape[0]} x {region.shape[1]} px: bright = where the model is unsure"
            if kind != "bias"
            else f"difficulty (bias) of {region.shape[0]} x {region.shape[1]} px: bright = predicted "
            "classes whose bias grew most"
        )
