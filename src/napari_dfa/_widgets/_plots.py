"""Matplotlib canvases for the docks: live training curves and the bias chart."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

__all__ = ["BiasChart", "TrainingPlot"]


def _canvas(width: float, height: float, rows: int = 1, layout: str | None = "constrained"):
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90, layout=layout)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 70))
    axes = figure.subplots(rows, 1)
    return figure, canvas, np.atleast_1d(axes)


class TrainingPlot:
    """Loss per step and the per-class DFA bias (bars), redrawn at most every ``interval`` s
    so that plotting never stalls the viewer."""

    def __init__(self, interval: float = 0.4) -> None:
        self.figure, self.canvas, (self.ax_loss, self.ax_bias) = _canvas(4.0, 4.2, rows=2)
        self.interval = interval
        self._last_draw = 0.0
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._bars = None
        self.reset([], [], [])

    def reset(self, names: Sequence[str], colors: Sequence[str], bias_init: Sequence[float]) -> None:
        self.steps, self.losses = [], []
        ax = self.ax_loss
        ax.clear()
        (self._line,) = ax.plot([], [], color="#3f51b5", lw=1.0, alpha=0.45, label="loss")
        (self._smooth,) = ax.plot([], [], color="#3f51b5", lw=2.0, label="smoothed")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("training loss", fontsize=9)
        ax = self.ax_bias
        ax.clear()
        x = np.arange(len(names))
        ax.bar(x - 0.2, bias_init, 0.4, color="#9e9e9e", label="prior (init)")
        self._bars = ax.bar(x + 0.2, bias_init, 0.4, color=list(colors) or None, edgecolor="black", lw=0.5,
                            label="learned")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(x, list(names), rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("bias b_c")
        ax.set_title("DFA bias per class: prior (grey) vs learned", fontsize=9)
        self._bias_init = np.asarray(bias_init, float)
        self.draw(force=True)

    def add(self, step: int, loss: float, bias: Sequence[float]) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        if self._bars is not None and len(self._bars) == len(bias):
            for bar, b in zip(self._bars, bias):
                bar.set_height(b)
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        if self.steps:
            y = np.asarray(self.losses)
            self._line.set_data(self.steps, y)
            alpha = 0.1
            smooth = np.empty_like(y)
            acc = y[0]
            for i, v in enumerate(y):
                acc = alpha * v + (1 - alpha) * acc
                smooth[i] = acc
            self._smooth.set_data(self.steps, smooth)
            self.ax_loss.relim()
            self.ax_loss.autoscale_view()
        if self._bars is not None and len(self._bars):
            heights = np.array([bar.get_height() for bar in self._bars])
            lo = min(heights.min(), self._bias_init.min(), 0.0)
            hi = max(heights.max(), self._bias_init.max(), 0.0)
            pad = 0.1 * (hi - lo) + 1e-3
            self.ax_bias.set_ylim(lo - pad, hi + pad)
        self.canvas.draw_idle()


class BiasChart:
    """The learned DFA bias next to its log-frequency prior (the core's chart)."""

    def __init__(self) -> None:
        self.figure, self.canvas, (self.ax,) = _canvas(4.0, 2.8, layout=None)  # bias_figure lays out

    def show(self, names: Sequence[str], bias_init: Sequence[float], bias: Sequence[float]) -> None:
        from napari_dfa.plots import bias_figure

        self.ax.clear()
        if names:
            bias_figure(list(names), list(bias_init), list(bias), ax=self.ax)
            self.ax.set_title("DFA bias: prior (init) vs learned", fontsize=9)
            self.ax.tick_params(labelsize=8)
        else:
            self.ax.text(0.5, 0.5, "no model yet", ha="center", va="center", transform=self.ax.transAxes)
            self.ax.set_axis_off()
        self.canvas.draw_idle()
