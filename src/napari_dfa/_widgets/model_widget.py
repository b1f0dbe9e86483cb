"""The Model widget: start from the shipped default model, a model folder or a new model
on a chosen encoder, save the current model, and see its classes and where it came from."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from qtpy.QtCore import Qt

from napari_dfa._widgets._common import notify_error, notify_info, start_task
from napari_dfa._widgets._jobs import load_model_job, new_model_job, save_model_job
from napari_dfa._widgets.state import ModelState, model_state

__all__ = ["ModelWidget"]


class ModelWidget(Container):
    """Load / save the viewer's current DFA model (shared with the other widgets)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.state: ModelState = model_state(napari_viewer)
        self.default_button = PushButton(text="Use the shipped default model")
        self.load_folder = FileEdit(mode="d", label="model folder", nullable=True)
        self.load_button = PushButton(text="Load model folder")
        from napari_dfa.model.encoders import ENCODER_CHOICES  # Qt-free, no torch import

        self.encoder = ComboBox(label="encoder", choices=ENCODER_CHOICES, value=ENCODER_CHOICES[0])
        self.encoder_weights = FileEdit(
            mode="r",
            label="weights",
            filter="*.safetensors",
            nullable=True,
            tooltip="optional pretrained encoder weights (.safetensors, made for this timm encoder)",
        )
        self.new_button = PushButton(text="New model")
        self.save_folder = FileEdit(mode="d", label="save to", nullable=True)
        self.save_button = PushButton(text="Save current model")
        self.info = Label(value="")
        self.info.native.setWordWrap(True)
        self.info.native.setTextFormat(Qt.TextFormat.RichText)
        self.extend(
            [
                self.default_button,
                Container(widgets=[self.load_folder, self.load_button], layout="horizontal", labels=False),
                Container(
                    widgets=[self.encoder, self.encoder_weights, self.new_button], layout="horizontal", labels=False
                ),
                Container(widgets=[self.save_folder, self.save_button], layout="horizontal", labels=False),
                self.info,
            ]
        )
        self.native.layout().addStretch(1)
        self.default_button.changed.connect(lambda: self.load(None))
        self.load_button.changed.connect(self._load_clicked)
        self.new_button.changed.connect(self._new_clicked)
        self.save_button.changed.connect(self._save_clicked)
        self.state.connect(self._on_model_changed)
        self._worker = None
        self.refresh()

    # --- actions --------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        for w in (self.default_button, self.load_button, self.new_button, self.save_button):
            w.enabled = not busy

    def load(self, folder: str | Path | None) -> Any:
        """Load the default model (``None``) or a model folder in a worker thread."""
        self._busy(True)
        self.info.value = "loading the model ..."
        doing = "Loading the default model" if folder is None else f"Loading the model folder {folder}"
        self._worker = start_task(load_model_job, folder, doing=doing, on_return=self._loaded, on_done=self._done)
        return self._worker

    def _load_clicked(self) -> None:
        folder = self.load_folder.value
        if folder is None:
            notify_error("choose a model folder first (a folder with model.safetensors and config.json)")
            return
        self.load(folder)

    def _new_clicked(self) -> Any:
        """A new, untrained model on the chosen encoder (fine-tuning names its classes)."""
        weights = self.encoder_weights.value
        self._busy(True)
        self.info.value = "building the model ..."
        self._worker = start_task(
            new_model_job,
            self.encoder.value,
            None if weights is None else str(weights),
            doing=f"Building a new model on the {self.encoder.value} encoder",
            on_return=self._loaded,
            on_done=self._done,
        )
        return self._worker

    def _loaded(self, result: tuple[Any, str]) -> None:
        model, source = result
        self.state.set_model(model, source)
        notify_info(f"napari-dfa: current model: {source} ({len(model.config.class_names)} classes)")

    def _save_clicked(self) -> Any:
        if not self.state.has_model:
            notify_error("there is no current model to save; load the default model or fine-tune one first")
            return None
        if self.save_folder.value is None:
            notify_error("choose a folder to save the model to (a new or empty folder, or a model folder)")
            return None
        folder = Path(self.save_folder.value)
        self._busy(True)
        self._worker = start_task(
            save_model_job,
            self.state.model,
            folder,
            doing=f"Saving the model to {folder}",
            on_return=lambda p: notify_info(f"napari-dfa: model saved to {p}"),
            on_done=self._done,
        )
        return self._worker

    def _done(self) -> None:
        self._busy(False)
        self.refresh()

    # --- display --------------------------------------------------------------------
    def _on_model_changed(self, _state: Any = None) -> None:
        self.refresh()

    def refresh(self) -> None:
        d = self.state.describe()
        if not d:
            self.info.value = (
                "<i>No model yet.</i> Use the shipped default model or load a model folder; "
                "the Fine-tune widget starts from the default model if none is loaded."
            )
            return
        swatches = "<br>".join(
            f"<span style='color:{html.escape(c)}'>&#9632;</span> {i}. {html.escape(n)}"
            for i, (n, c) in enumerate(zip(d["class_names"], d["class_colors"], strict=False), start=1)
        )
        lines = [f"<b>Current model</b>: {html.escape(d['source'])}"]
        if d.get("folder"):
            lines.append(f"folder: {html.escape(str(d['folder']))}")
        encoder = f"encoder: {html.escape(d['backbone'])}"
        if d.get("encoder_weights"):
            encoder += f" (pretrained: {html.escape(d['encoder_weights'])})"
        lines.append(encoder)
        bias = f"DFA bias: {d['bias_placement']}, init {d['bias_init']}"
        lines.append(bias + ("" if d["bias_learnable"] else " (frozen)"))
        if d.get("steps"):
            loss = d.get("final_loss")
            loss_text = f", final loss {loss:.3f}" if isinstance(loss, float) else ""
            lines.append(
                f"last training: {d['steps']} steps{loss_text} on {d.get('device') or '?'}"
                f"{', ' + d['date'] if d.get('date') else ''}"
            )
        lines.append(f"<b>{len(d['class_names'])} classes</b> (label value: name)<br>{swatches}")
        self.info.value = "<br>".join(lines)
