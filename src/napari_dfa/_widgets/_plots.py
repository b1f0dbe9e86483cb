"""Matplotlib canvases for the docks: live training curves and the bias chart."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

__all__ = ["BiasChart", "TrainingPlot"]

LOSS_RANGE = (0.02, 20.0)  # y limits of the loss curve (log scale) unless a loss leaves them


def _canvas(width: float, height: float, rows: int = 1, layout: str | None = "constrained"):
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90, layout=layout)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 70))
    axes = figure.subplots(rows, 1)
    return figure, canvas, np.atleast_1d(axes)


class TrainingPlot:
    """Loss per step and the per-class DFA bias (bars), updated live without stalling the viewer.

    A full redraw costs ~30-100 ms of the GUI thread on a small, busy CPU, so only the
    changing artists are redrawn (blitting, a few ms); the axes are redrawn only when the
    data leave their limits (which grow with headroom). :meth:`add` records a step,
    :meth:`draw` shows the steps recorded so far (call it a few times a second).
    """

    def __init__(self, interval: float = 0.0) -> None:
        self.figure, self.canvas, (self.ax_loss, self.ax_bias) = _canvas(4.0, 4.2, rows=2, layout=None)
        # a fixed height: when the dock's layout changes (a status line wrapping differently),
        # a resizable canvas is re-laid-out and fully redrawn, 100-300 ms of the GUI thread
        self.canvas.setFixedHeight(self.canvas.minimumHeight())
        self.interval = interval
        self._last_draw = 0.0
        self._background = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._bars: list = []
        self._init_bars: list = []
        self._classes: tuple = ()
        self._bias_init = np.zeros(0)
        self.canvas.mpl_connect("draw_event", self._on_full_draw)
        self.canvas.mpl_connect("resize_event", lambda _e: self.figure.tight_layout())
        self.reset([], [], [])

    def reset(
        self,
        names: Sequence[str],
        colors: Sequence[str],
        bias_init: Sequence[float] | None = None,
        steps: int = 10,
        bias_range: float = 2.5,
    ) -> None:
        """Empty curves for a new run of about ``steps`` steps; bars start at ``bias_init``
        (or 0 until :meth:`set_bias_init`) on a ``±bias_range`` axis (give the largest
        bias expected in the run: each change of limits is a full redraw)."""
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        self.steps, self.losses = [], []
        init = np.zeros(len(names)) if bias_init is None else np.asarray(bias_init, float)
        key = (tuple(names), tuple(colors))
        if key == self._classes and self._bars:  # same classes: keep the artists and the layout
            self._bias_init = init
            for bar, b in zip(self._init_bars + self._bars, [*init, *init], strict=True):
                bar.set_height(b)
            self._line.set_data([], [])
            self._smooth.set_data([], [])
            before = self._limits()
            self._set_limits(steps, bias_range)
            if self._limits() == before and self._background is not None:
                self._blit()  # same axes as the last run ("fine-tune again"): no full redraw
                return
            self._background = None
            self.canvas.draw_idle()
            return
        self._classes = key
        ax = self.ax_loss
        ax.clear()
        (self._line,) = ax.plot([], [], color="#3f51b5", lw=1.0, alpha=0.45, animated=True)
        (self._smooth,) = ax.plot([], [], color="#3f51b5", lw=2.0, animated=True)
        # limits that hold for the whole run: each change of limits is a full redraw (a
        # loss spike to 3.5 at step 2 cost one on a linear axis); losses of the presets
        # live in LOSS_RANGE on a log axis
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=4))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # 0.1, 1, 10
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("training loss (thin) and its mean over 10 steps", fontsize=9)
        ax = self.ax_bias
        ax.clear()
        x = np.arange(len(names))
        self._bias_init = init
        self._init_bars = list(ax.bar(x - 0.2, init, 0.4, color="#9e9e9e"))
        self._bars = list(ax.bar(x + 0.2, init, 0.4, color=list(colors) or None, edgecolor="black", lw=0.5))
        for bar in self._init_bars + self._bars:
            bar.set_animated(True)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(x, list(names), rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("bias b_c")
        ax.set_title("DFA bias per class: prior (grey) vs learned (colour)", fontsize=9)
        self._set_limits(steps, bias_range)
        # once per set of classes: the layout engine costs more than drawing the figure
        self.figure.tight_layout()
        self._background = None
        self.canvas.draw_idle()

    def _limits(self) -> tuple:
        return self.ax_loss.get_xlim(), self.ax_loss.get_ylim(), self.ax_bias.get_ylim()

    def _set_limits(self, steps: int, bias_range: float) -> None:
        self.ax_loss.set_xlim(0, max(int(steps), 2))
        self.ax_loss.set_ylim(*LOSS_RANGE)
        r = max(bias_range, 1e-3)
        self.ax_bias.set_ylim(-r, r)
        if len(self._bias_init):
            self._fit_bias_limits(self._bias_init)

    def set_bias_init(self, bias_init: Sequence[float]) -> None:
        """The bias at initialisation (grey bars), known once training started."""
        self._bias_init = np.asarray(bias_init, float)
        for bar, b in zip(self._init_bars, self._bias_init, strict=False):
            bar.set_height(b)

    def add(self, step: int, loss: float, bias: Sequence[float]) -> None:
        """Record a step; it is shown by the next :meth:`draw`."""
        self.steps.append(step)
        self.losses.append(float(loss))
        if len(self._bars) == len(bias):
            for bar, b in zip(self._bars, bias, strict=True):
                bar.set_height(b)

    # --- drawing ---------------------------------------------------------------------
    def _animated(self) -> list:
        return [self._line, self._smooth, *self._init_bars, *self._bars]

    def _on_full_draw(self, _event) -> None:
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        for artist in self._animated():
            artist.axes.draw_artist(artist)

    def _fit_bias_limits(self, heights: np.ndarray) -> bool:
        lo = min(float(heights.min()), float(self._bias_init.min()), 0.0)
        hi = max(float(heights.max()), float(self._bias_init.max()), 0.0)
        cur_lo, cur_hi = self.ax_bias.get_ylim()
        if lo >= cur_lo and hi <= cur_hi:
            return False
        pad = 0.25 * (hi - lo) + 1e-3
        self.ax_bias.set_ylim(lo - pad, hi + pad)
        return True

    def _update_data(self) -> bool:
        """Move the data into the artists; True when the axes limits had to change."""
        changed = False
        if self.steps:
            y = np.asarray(self.losses)
            csum = np.cumsum(np.insert(y, 0, 0.0))
            idx = np.arange(1, len(y) + 1)
            start = np.maximum(idx - 10, 0)
            smooth = (csum[idx] - csum[start]) / (idx - start)  # mean of the last 10 steps
            self._line.set_data(self.steps, y)
            self._smooth.set_data(self.steps, smooth)
            if self.steps[-1] > self.ax_loss.get_xlim()[1]:
                self.ax_loss.set_xlim(0, max(10, 2 * self.steps[-1]))
                changed = True
            finite = y[np.isfinite(y) & (y > 0)]
            if finite.size:
                lo, hi = self.ax_loss.get_ylim()
                if finite.min() < lo or finite.max() > hi:  # beyond the usual range: a decade of headroom
                    self.ax_loss.set_ylim(min(lo, finite.min() / 10), max(hi, finite.max() * 10))
                    changed = True
        if self._bars:
            changed |= self._fit_bias_limits(np.array([bar.get_height() for bar in self._bars]))
        return changed

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        if self._update_data() or self._background is None or force:
            self.canvas.draw_idle()  # axes changed: full redraw, then a new background
            return
        self._blit()

    def _blit(self) -> None:
        """Redraw only the curves and bars over the saved background of the axes."""
        self.canvas.restore_region(self._background)
        for artist in self._animated():
            artist.axes.draw_artist(artist)
        # the Agg buffer now holds the new frame; update() (not blit(), whose repaint() is
        # synchronous) lets Qt paint it together with the dock's other changes: the whole
        # window is composed once per refresh instead of twice
        self.canvas.update()


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
