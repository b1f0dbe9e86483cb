"""The Fine-tune widget: annotations -> a fine-tuned DFA model, with live curves and preview."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    ProgressBar,
    PushButton,
)

from napari_dfa._widgets._common import (
    ACTIVITY_TIP,
    Throttle,
    image_levels,
    layer_choices,
    notify_error,
    notify_info,
    put_layer,
    start_job,
    start_task,
    visible_region,
    world_transform,
)
from napari_dfa._widgets.state import ModelState, model_state
from napari_dfa.errors import DFAError, InputError

__all__ = ["FineTuneWidget"]

PREVIEW_SIDE = 512  # px: the live preview predicts at most this much of the view
# s between two updates of the dock while training: each update composes the window (~50 ms
# of the GUI thread under software OpenGL) and holds Python's lock the training thread needs;
# at 1 s instead of 0.5 s training ran ~10 % faster in a shown viewer (benchmarks/gui_latency.py)
REFRESH_S = 1.0


class FineTuneWidget(Container):
    """Fine-tune the current model on a Labels/Shapes annotation layer over an image."""

    def __init__(self, napari_viewer: Any) -> None:
        from napari.layers import Image, Labels, Shapes

        from napari_dfa._widgets._train_options import TrainOptions

        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.state: ModelState = model_state(napari_viewer)
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, Image))
        self.annotations = ComboBox(
            label="annotations",
            choices=layer_choices(napari_viewer, Labels, Shapes),
            tooltip="a Labels layer (0 = unlabeled, 1..K = classes) or a Shapes layer with a 'class' feature",
        )
        self.count_button = PushButton(text="Count annotations")
        self.train_options = TrainOptions()
        for name in TrainOptions.FIELDS:  # ft.steps, ft.device, ...: the options by name
            setattr(self, name, getattr(self.train_options, name))
        self.start_button = PushButton(text="Fine-tune")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=1000, value=0, label="progress")
        self.activity = CheckBox(text="napari activity bar", value=False, tooltip=ACTIVITY_TIP)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        # room for 3 lines from the start: a status that re-wraps while training would
        # change the dock's layout and make Qt re-lay-out and redraw the plots
        self.status.native.setMinimumHeight(3 * self.status.native.fontMetrics().lineSpacing() + 4)

        def row(*widgets: Any) -> Container:
            return Container(widgets=list(widgets), layout="horizontal", labels=True)

        self.extend(
            [
                Container(widgets=[self.image, self.annotations], labels=True),
                self.count_button,
                self.train_options,
                row(self.start_button, self.cancel_button),
                row(self.progress, self.activity),
                self.status,
            ]
        )
        from napari_dfa._widgets._class_table import ClassTable
        from napari_dfa._widgets._plots import TrainingPlot

        self.table = ClassTable()
        self.plot = TrainingPlot()
        self.native.layout().insertWidget(2, self.table)
        self.native.layout().addWidget(self.plot.canvas)

        self._worker = None
        self._pbar = None
        self._cancelled = False
        self._preview = None
        self._refresh = Throttle(REFRESH_S)
        self._context: dict[str, Any] = {}
        self.image.changed.connect(self._on_inputs_changed)
        self.annotations.changed.connect(self._on_annotations_changed)
        self.count_button.changed.connect(lambda: self.refresh(notify=True))
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        camera = napari_viewer.scene.camera if hasattr(napari_viewer, "scene") else napari_viewer.camera
        camera.events.center.connect(self._update_preview_region)
        camera.events.zoom.connect(self._update_preview_region)
        self.state.connect(self._on_model_changed)
        self.reset_choices()
        self.refresh()
        from napari_dfa._widgets._jobs import load_model_job, warm_up

        threading.Thread(target=warm_up, name="napari-dfa-warm-up", daemon=True).start()
        if not self.state.has_model:  # fine-tuning starts from the shipped default model
            start_task(load_model_job, None, doing="Loading the default model", on_return=self._default_loaded)

    def _default_loaded(self, result: tuple[Any, str]) -> None:
        if not self.state.has_model:
            self.state.set_model(*result)

    @property
    def busy(self) -> bool:
        """Whether a job of this dock is running."""
        return self._worker is not None

    # --- annotations -> class table ---------------------------------------------------
    def _model_names(self) -> list[str]:
        return list(self.state.model.config.class_names) if self.state.has_model else []

    def _on_model_changed(self, _state: Any = None) -> None:
        if self._worker is None:  # a new model brings its class names; a running job keeps the table
            self.table.clear_edits()
            self.table.setRowCount(0)
        self.refresh()

    def _on_inputs_changed(self, *_: Any) -> None:
        self.refresh()

    def _on_annotations_changed(self, *_: Any) -> None:
        self.table.clear_edits()
        self.refresh()

    def _read(self, margin: int = 0):
        from napari_dfa._widgets._annotations import read_annotations

        if self.image.value is None:
            raise InputError("there is no image layer; open an RGB H&E image first (File > Open Sample > napari DFA)")
        if self.annotations.value is None:
            raise InputError(
                "there is no annotation layer; add a Labels layer (Layers > New Labels layer), "
                "paint a few strokes per class (0 = unlabeled), then fine-tune"
            )
        names = self.table.names() if self.table.rowCount() else self._model_names()
        return read_annotations(self.annotations.value, self.image.value, names, margin=margin)

    def refresh(self, notify: bool = False) -> Any:
        """Count the annotated pixels per class and show the frequency prior they imply."""
        from napari_dfa._widgets._annotations import class_colors
        from napari_dfa.data.regions import class_counts
        from napari_dfa.model import frequency_prior

        try:
            ann = self._read()
        except DFAError as exc:
            self.status.value = str(exc)
            if notify:
                notify_error(str(exc))
            return None
        counts = class_counts(ann.labels, ann.num_classes)
        prior = frequency_prior(counts) if ann.num_classes else []
        colors = class_colors(ann.class_names, self.state.model, self.annotations.value)
        self.table.set_classes(ann.class_names, colors, counts, prior)
        self.status.value = (
            f"{int(counts.sum()):,} annotated px in {len(ann.regions)} region(s) of "
            f"'{ann.layer_name}'; the prior \u03c0 initialises the DFA bias"
        )
        return ann

    # --- training --------------------------------------------------------------------
    def start(self) -> Any:
        """Start fine-tuning (from the current model, or the shipped default)."""
        from napari_dfa._widgets._jobs import PreviewSettings, train_job
        from napari_dfa.device import resolve_device

        if self._worker is not None:
            return None
        try:
            ann = self._read(margin=self.crop_size.value)
            if ann.pixels == 0:
                raise InputError(
                    f"layer '{ann.layer_name}' has no annotations (every pixel is 0 = unlabeled); "
                    "paint a few strokes of each class, then fine-tune"
                )
            self.refresh()
            names, colors = self.table.validated()
            resolve_device(self.device.value)
        except DFAError as exc:
            notify_error(str(exc))
            return None
        image_layer = self.image.value
        cfg = self.train_options.config()
        self._preview = PreviewSettings(self.preview_every.value) if self.preview.value else None
        self._context = {
            "image": image_layer,
            "names": names,
            "colors": colors,
            "annotations": ann.layer_name,
            "source": self.state.source or "shipped default model",
        }
        self._update_preview_region()
        if self._preview is not None and self._preview.region is not None:
            # the (empty) preview layer is made now, with the click, not mid-training:
            # napari building a new layer stalls the viewer for 0.2-0.3 s
            region = self._preview.region
            self._put_preview(np.zeros(region.shape, np.uint8), region)
        job = train_job(
            image_levels(image_layer)[0],
            ann.regions,
            ann.labels,
            names,
            colors,
            self.loss.value,
            self.state.model,
            cfg,
            self._preview,
            self.threads.value,
            bias_placement=self.placement.value,
            bias_init=self.bias_init.value,
        )
        from napari.utils import progress

        self._pbar = None if not self.activity.value else progress(total=cfg.steps, desc="napari-dfa fine-tune")
        steps = cfg.steps if not cfg.max_seconds else min(cfg.steps, 50)
        self.plot.reset(names, colors, steps=steps, bias_range=self._bias_range(ann))
        self._refresh = Throttle(REFRESH_S)
        self._cancelled = False
        self._set_running(True)
        self.status.value = "starting ..."
        self._worker = start_job(
            job,
            doing="Fine-tuning",
            on_yield=self._on_event,
            on_return=self._on_result,
            on_done=self._on_done,
        )
        return self._worker

    def _bias_range(self, ann: Any) -> float:
        """The largest |bias| expected in the run, with headroom, for the plot's axis: the
        bias starts from the annotations' prior (new placement / init / classes) or the
        current model's bias (kept), and drifts from there."""
        from napari_dfa.data.regions import class_counts
        from napari_dfa.model import frequency_prior
        from napari_dfa.model.focal_bias import initial_bias

        expected = [2.0]
        prior = frequency_prior(class_counts(ann.labels, ann.num_classes)) if ann.num_classes else []
        if prior:
            expected.append(float(initial_bias(prior, self.bias_init.value).abs().max()))
        model = self.state.model
        if model is not None and len(model.focal_bias.bias):
            expected.append(float(model.focal_bias.bias.detach().abs().max()))
        return 1.25 * max(expected)

    def cancel(self) -> None:
        """Stop training at the next step; the current model stays as it was."""
        if self._worker is None:
            return
        self._cancelled = True
        self._worker.quit()
        self.cancel_button.enabled = False
        self.status.value = "cancelled: the current model is unchanged"

    def _set_running(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.cancel_button.enabled = running
        self.count_button.enabled = not running

    def _update_preview_region(self, *_: Any) -> None:
        layer = self._context.get("image")
        if self._preview is None or layer is None or layer not in self.viewer.layers:
            return
        region = visible_region(layer, PREVIEW_SIDE)
        self._preview.region = region if region.size else None

    def _on_event(self, event: Any) -> None:
        from napari_dfa._widgets._jobs import ModelLoaded, PreviewEvent, StatusEvent

        if isinstance(event, ModelLoaded):
            if not self.state.has_model:
                self.state.set_model(event.model, event.source)
            return
        if self._cancelled:
            return
        if isinstance(event, StatusEvent):
            self.status.value = event.message
        elif isinstance(event, PreviewEvent):
            self._show_preview(event)
        else:
            self._on_step(event)

    def _on_step(self, ev: Any) -> None:
        ctx = self._context
        if "plotted" not in ctx:
            ctx["plotted"] = True
            self.plot.set_bias_init(ev.bias_init)
        self.plot.add(ev.step, ev.loss, ev.bias)
        ctx["last"] = ev
        if self._refresh.ready():
            self._show_step()

    def _show_step(self) -> None:
        """Show the latest step (at most a few times a second: every repaint costs GUI time)."""
        ev = self._context.get("last")
        if ev is None:
            return
        self.plot.draw()
        frac = ev.fraction
        budget = self.max_seconds.value
        if budget:
            frac = max(frac, min(ev.elapsed / budget, 1.0))
        self.progress.value = int(1000 * frac)
        if self._pbar is not None:
            self._pbar.update(ev.step - self._pbar.n)
        rate = ev.step / ev.elapsed if ev.elapsed > 0 else 0.0
        self.status.value = (
            f"step {ev.step}/{ev.total_steps} \u00b7 loss {ev.loss:.3f} \u00b7 {rate:.2f} steps/s "
            f"\u00b7 ETA {ev.eta:.0f} s \u00b7 device: {ev.device}"
        )

    def _show_preview(self, ev: Any) -> None:
        self._put_preview(ev.labels, ev.region)

    def _put_preview(self, labels: Any, region: Any) -> None:
        from napari_dfa.layers import labels_colormap

        layer = self._context["image"]
        scale, translate = world_transform(layer)
        put_layer(
            self.viewer,
            "preview",
            labels,
            "labels",
            name="DFA live preview",
            colormap=labels_colormap(self._context["colors"]),
            opacity=0.5,
            scale=scale,
            translate=translate + scale * region.origin,
        )

    def _on_result(self, result: Any) -> None:
        if self._cancelled:
            return
        ctx = self._context
        self._show_step()
        source = f"fine-tuned on '{ctx['annotations']}' ({result.steps} steps, from {ctx['source']})"
        self.state.set_model(result.model, source)
        msg = (
            f"fine-tuned {result.steps} steps in {result.elapsed:.0f} s (stopped by {result.stopped}), "
            f"final loss {result.final_loss:.3f} on {result.summary.get('device', '?')}; "
            "it is now the current model"
        )
        self.status.value = msg
        notify_info(f"napari-dfa: {msg}")

    def _on_done(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._set_running(False)
        self.progress.value = 1000 if not self._cancelled else self.progress.value
