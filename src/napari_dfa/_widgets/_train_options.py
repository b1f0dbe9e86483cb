"""The training options of the Fine-tune dock (defaults from the core's configs)."""

from __future__ import annotations

import os
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from napari_dfa._widgets._common import default_threads

__all__ = ["TrainOptions"]

ENCODER_MODES = {"auto": None, "frozen": True, "trained": False}


class TrainOptions(Container):
    """Bias placement/init, loss, encoder, budgets, crops, device, threads and the live preview."""

    FIELDS = (
        "placement",
        "bias_init",
        "loss",
        "encoder",
        "device",
        "steps",
        "max_seconds",
        "batch_size",
        "crop_size",
        "threads",
        "preview",
        "preview_every",
    )

    def __init__(self) -> None:
        from napari_dfa.device import DEVICES
        from napari_dfa.model import BIAS_INITS, BIAS_PLACEMENTS, ModelConfig
        from napari_dfa.model.loss_presets import LOSSES
        from napari_dfa.train import TrainConfig

        super().__init__(labels=False)
        tc, mc = TrainConfig(), ModelConfig(class_names=["x"])
        self.placement = ComboBox(label="bias placement", choices=BIAS_PLACEMENTS, value=mc.bias_placement)
        self.bias_init = ComboBox(label="bias init", choices=BIAS_INITS, value=mc.bias_init)
        self.loss = ComboBox(label="loss", choices=LOSSES, value="plain")
        self.encoder = ComboBox(
            label="encoder",
            choices=tuple(ENCODER_MODES),
            value="auto",
            tooltip="train the encoder or keep it fixed (auto: fixed when it holds pretrained weights)",
        )
        self.device = ComboBox(label="device", choices=DEVICES, value=tc.device)
        self.steps = SpinBox(label="steps", min=1, max=1_000_000, value=tc.steps)
        self.max_seconds = FloatSpinBox(
            label="max s",
            min=0,
            max=1e6,
            step=10,
            value=60.0,
            tooltip="time budget in seconds (0 = steps only)",
        )
        self.batch_size = SpinBox(label="batch", min=1, max=256, value=tc.batch_size)
        self.crop_size = SpinBox(label="crop px", min=32, max=2048, step=32, value=tc.crop_size)
        self.threads = SpinBox(
            label="CPU threads",
            min=1,
            max=os.cpu_count() or 1,
            value=default_threads(),
            tooltip="torch threads of the training thread; one core is left to the viewer",
        )
        self.preview = CheckBox(text="live preview of the view", value=False)
        self.preview_every = SpinBox(label="every (steps)", min=1, max=10_000, value=10)

        def row(*widgets: Any) -> Container:
            return Container(widgets=list(widgets), layout="horizontal", labels=True)

        self.extend(
            [
                row(self.placement, self.bias_init),
                row(self.loss, self.encoder),
                row(self.device, self.threads),
                row(self.steps, self.max_seconds),
                row(self.batch_size, self.crop_size),
                row(self.preview, self.preview_every),
            ]
        )
        self.margins = (0, 0, 0, 0)

    def config(self):
        """The :class:`~napari_dfa.train.TrainConfig` of these options (bias settings are
        applied by the job only where they differ from the starting model)."""
        from napari_dfa.train import TrainConfig

        return TrainConfig(
            steps=self.steps.value,
            max_seconds=self.max_seconds.value or None,
            batch_size=self.batch_size.value,
            crop_size=self.crop_size.value,
            device=self.device.value,
            freeze_encoder=ENCODER_MODES[self.encoder.value],
        )
