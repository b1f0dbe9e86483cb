"""The Segment widget: tiled segmentation of an image (or a pyramid level) with the current model."""

from __future__ import annotations

import atexit
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox

from napari_dfa._widgets._common import (
    ACTIVITY_TIP,
    Throttle,
    default_threads,
    image_levels,
    layer_choices,
    notify_error,
    notify_info,
    start_job,
    world_transform,
)
from napari_dfa._widgets.state import ModelState, model_state
from napari_dfa.errors import DFAError

__all__ = ["SegmentWidget", "level_transform"]


def level_transform(layer: Any, level: int) -> tuple[np.ndarray, np.ndarray]:
    """World ``(scale, translate)`` of pyramid ``level`` of an image layer: a level pixel
    covers ``d x d`` level-0 pixels, so its centre sits ``(d - 1) / 2`` px further on."""
    scale, translate = world_transform(layer)
    levels = image_levels(layer)
    d = np.array(levels[0].shape[:2], float) / np.array(levels[level].shape[:2], float)
    return scale * d, translate + scale * (d - 1) / 2


class SegmentWidget(Container):
    """Segment an image layer with the current model, tile by tile, into a zarr pyramid."""

    def __init__(self, napari_viewer: Any) -> None:
        import os

        from napari.layers import Image

        from napari_dfa.device import DEVICES
        from napari_dfa.infer.engine import EngineConfig

        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.state: ModelState = model_state(napari_viewer)
        ec = EngineConfig()
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, Image))
        self.level = SpinBox(label="pyramid level", min=0, max=0, value=0)
        self.level_info = Label(value="")
        self.tile = SpinBox(
            label="tile px",
            min=0,
            max=16384,
            step=64,
            value=ec.tile,
            tooltip="0 = auto: 1024 on the CPU, 2048 on a GPU",
        )
        self.halo = SpinBox(label="halo px", min=0, max=512, step=32, value=ec.halo)
        self.batch = SpinBox(label="batch", min=0, max=256, value=ec.batch_size, tooltip="0 = auto")
        self.device = ComboBox(label="device", choices=DEVICES, value=ec.device)
        self.threads = SpinBox(label="CPU threads", min=1, max=os.cpu_count() or 1, value=default_threads())
        self.tissue = CheckBox(text="skip background (tissue detection)", value=ec.tissue_detection)
        self.probabilities = ComboBox(
            label="probabilities", choices=["none", "uint8", "float16"], value=ec.probabilities or "none"
        )
        self.output = FileEdit(mode="d", label="output folder", nullable=True, tooltip="empty: a temporary folder")
        self.overwrite = CheckBox(text="overwrite", value=ec.overwrite)
        self.start_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=1000, value=0, label="progress")
        self.activity = CheckBox(text="napari activity bar", value=False, tooltip=ACTIVITY_TIP)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.status.native.setMinimumHeight(3 * self.status.native.fontMetrics().lineSpacing() + 4)  # no re-layouts

        def row(*widgets: Any) -> Container:
            return Container(widgets=list(widgets), layout="horizontal", labels=True)

        self.extend(
            [
                Container(widgets=[self.image], labels=True),
                row(self.level, self.level_info),
                row(self.tile, self.halo, self.batch),
                row(self.device, self.threads),
                row(self.tissue, self.probabilities),
                row(self.output, self.overwrite),
                row(self.start_button, self.cancel_button),
                row(self.progress, self.activity),
                self.status,
            ]
        )
        self.native.layout().addStretch(1)
        self._worker = None
        self._pbar = None
        self._cancelled = False
        self._refresh = Throttle(0.5)
        self._context: dict[str, Any] = {}
        self.image.changed.connect(self._on_image_changed)
        self.level.changed.connect(self._on_image_changed)
        self.start_button.changed.connect(self.start)
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)
        self.cancel_button.changed.connect(self.cancel)
        self.reset_choices()
        self._on_image_changed()
        from napari_dfa._widgets._jobs import warm_up

        threading.Thread(target=warm_up, name="napari-dfa-warm-up", daemon=True).start()

    @property
    def busy(self) -> bool:
        """Whether a job of this dock is running."""
        return self._worker is not None

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image.value
        if layer is None:
            self.level_info.value = ""
            return
        levels = image_levels(layer)
        self.level.max = len(levels) - 1
        lv = levels[min(self.level.value, len(levels) - 1)]
        self.level_info.value = f"{lv.shape[0]} x {lv.shape[1]} px ({len(levels)} level(s))"

    def _out_path(self, layer: Any, level: int) -> Path | None:
        folder = self.output.value
        if folder is None:
            return None  # a temporary store (see _on_result for its clean-up)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", layer.name).strip("_") or "image"
        return Path(folder) / f"{stem}_level{level}_dfa.zarr"

    def start(self) -> Any:
        """Segment the chosen image level with the current model (default model if none)."""
        from napari_dfa._widgets._jobs import segment_job
        from napari_dfa.device import resolve_device
        from napari_dfa.infer.engine import EngineConfig

        if self._worker is not None:
            return None
        layer, level = self.image.value, self.level.value
        try:
            if layer is None:
                raise DFAError("there is no image layer to segment; open an RGB H&E image first")
            if not layer.rgb:
                raise DFAError(f"image layer '{layer.name}' is not RGB; DFA models segment RGB H&E images")
            resolve_device(self.device.value)
            if self.tile.value % 32 or self.halo.value % 32:
                raise DFAError("tile and halo must be multiples of 32 px (the model's coarsest stride)")
        except DFAError as exc:
            notify_error(str(exc))
            return None
        if not self.state.has_model:
            notify_info("napari-dfa: no current model; segmenting with the shipped default model")
        levels = image_levels(layer)
        cfg = EngineConfig(
            tile=self.tile.value,
            halo=self.halo.value,
            batch_size=self.batch.value,
            device=self.device.value,
            tissue_detection=self.tissue.value,
            probabilities=None if self.probabilities.value == "none" else self.probabilities.value,
            overwrite=self.overwrite.value,
        )
        out = self._out_path(layer, level)
        self._context = {"layer": layer, "level": level, "out": out}
        job = segment_job(
            levels if len(levels) > 1 else levels[0],
            self.state.model,
            out,
            cfg,
            level,
            self.threads.value,
        )
        from napari.utils import progress

        self._pbar = None if not self.activity.value else progress(total=0, desc="napari-dfa segmentation")
        self._cancelled = False
        self._set_running(True)
        self.status.value = "starting ..."
        self._worker = start_job(
            job,
            doing="Segmentation",
            on_yield=self._on_progress,
            on_return=self._on_result,
            on_done=self._on_done,
        )
        return self._worker

    def cancel(self) -> None:
        """Stop after the current batch of tiles; existing layers stay as they are."""
        if self._worker is None:
            return
        self._cancelled = True
        self._worker.quit()
        self.cancel_button.enabled = False
        self.status.value = "cancelled: no layer was added"

    def _set_running(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.cancel_button.enabled = running

    def _on_progress(self, ev: Any) -> None:
        from napari_dfa._widgets._jobs import ModelLoaded, StatusEvent

        if isinstance(ev, ModelLoaded):
            if not self.state.has_model:
                self.state.set_model(ev.model, ev.source)
            return
        if self._cancelled:
            return
        if isinstance(ev, StatusEvent):
            self.status.value = ev.message
            return
        self._context["last"] = ev
        if self._refresh.ready():
            self._show_progress()

    def _show_progress(self) -> None:
        ev = self._context.get("last")
        if ev is None:
            return
        self.progress.value = int(1000 * ev.fraction)
        if self._pbar is not None:
            if self._pbar.total != ev.total:
                self._pbar.total = ev.total
            self._pbar.update(ev.done - self._pbar.n)
        self.status.value = (
            f"tiles {ev.done}/{ev.total} ({ev.skipped} background) \u00b7 "
            + ("estimating speed" if ev.estimating else f"{ev.mpx_per_s:.2f} MP/s \u00b7 ETA {ev.eta:.0f} s")
            + f" \u00b7 device: {ev.device}"
        )

    def _on_result(self, result: Any) -> None:
        from napari.layers import Layer

        from napari_dfa._reader import read_layers

        if self._cancelled:
            return
        ctx = self._context
        self._show_progress()
        layer, level = ctx["layer"], ctx["level"]
        scale, translate = level_transform(layer, level)
        suffix = f" (level {level})" if level else ""
        added = []
        out_is_temp = ctx.get("out") is None
        if out_is_temp:  # deleted when its layers are removed, or at exit
            atexit.register(shutil.rmtree, result.path.parent, ignore_errors=True)
        for data, meta, kind in read_layers(result.path):
            meta = dict(meta, scale=tuple(scale), translate=tuple(translate))
            if kind == "labels":
                meta["name"] = f"{layer.name} DFA segmentation{suffix}"
            else:
                meta["name"] = f"{layer.name} {meta['name']}{suffix}"
            meta.setdefault("metadata", {})
            meta["metadata"] = dict(meta["metadata"], napari_dfa_role="segmentation", path=str(result.path))
            if out_is_temp:
                meta["metadata"]["napari_dfa_temp_dir"] = str(result.path.parent)
            added.append(self.viewer.add_layer(Layer.create(data, meta, kind)))
        msg = (
            f"segmented {result.shape[0]} x {result.shape[1]} px in {result.elapsed:.1f} s "
            f"({result.tiles} tiles, {result.skipped} background) on {result.device}; saved in {result.path}"
        )
        self.status.value = msg
        notify_info(f"napari-dfa: {msg}")

    def _on_layer_removed(self, event: Any) -> None:
        """Delete a temporary result store once none of its layers is left."""
        tmp = getattr(event.value, "metadata", {}).get("napari_dfa_temp_dir")
        if tmp and not any(lay.metadata.get("napari_dfa_temp_dir") == tmp for lay in self.viewer.layers):
            shutil.rmtree(tmp, ignore_errors=True)

    def _on_done(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._set_running(False)
