"""The live training plot redraws only what changes (a full redraw stalls the viewer)."""

from __future__ import annotations

import numpy as np


def _plot(qtbot):
    from napari_dfa._widgets._plots import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot.canvas)
    plot.canvas.show()
    full = []
    plot.canvas.mpl_connect("draw_event", lambda _e: full.append(1))
    return plot, full


def test_steps_within_the_limits_are_blitted_not_redrawn(qtbot):
    plot, full = _plot(qtbot)
    names, colors = ["tumor", "stroma", "normal"], ["#ff0000", "#00ff00", "#0000ff"]
    plot.reset(names, colors, [1.5, -3.0, 1.5], steps=20, bias_range=3.0)
    qtbot.wait(50)  # the pending full draw of the new axes
    assert plot.ax_bias.get_ylim()[0] <= -3.0  # the prior fits the axis from the start
    n = len(full)
    for step, loss in enumerate([0.9, 3.5, 0.4, 0.2], start=1):  # a spike to 3.5 included
        plot.add(step, loss, [1.4, -2.9, 1.5])
        plot.draw(force=False)
        qtbot.wait(1)
    assert len(full) == n  # blitted: no full redraw
    plot.add(5, 500.0, [1.4, -2.9, 1.5])  # far beyond the usual range: the axes follow
    plot.draw()
    plot.canvas.draw()
    assert plot.ax_loss.get_ylim()[1] >= 500.0


def test_reset_with_the_same_classes_keeps_artists_and_layout(qtbot):
    plot, _ = _plot(qtbot)
    names, colors = ["a", "b"], ["#ff0000", "#00ff00"]
    plot.reset(names, colors, [0.5, -0.5], steps=10)
    bars = list(plot._bars)
    for step in range(1, 4):
        plot.add(step, 1.0 / step, [0.6, -0.6])
    plot.reset(names, colors, [0.2, -0.2], steps=30)
    assert plot._bars == bars and plot.steps == [] and plot.ax_loss.get_xlim() == (0, 30)
    assert [b.get_height() for b in plot._bars] == [0.2, -0.2]
    assert np.array_equal(plot._line.get_xdata(), [])
    plot.reset(["a", "b", "c"], [*colors, "#0000ff"], None, steps=10)  # other classes: rebuilt
    assert len(plot._bars) == 3 and plot._bars[0] is not bars[0]


def test_fine_tune_again_with_the_same_settings_needs_no_full_redraw(qtbot):
    plot, full = _plot(qtbot)
    names, colors = ["a", "b"], ["#ff0000", "#00ff00"]
    plot.reset(names, colors, [0.5, -0.5], steps=10)
    qtbot.wait(50)
    for step in range(1, 4):
        plot.add(step, 1.0 / step, [0.6, -0.6])
    plot.draw()
    n = len(full)
    plot.reset(names, colors, [0.6, -0.6], steps=10)  # same classes and limits: blitted
    qtbot.wait(50)
    assert len(full) == n and plot.steps == []
    plot.reset(names, colors, [0.6, -0.6], steps=50)  # a longer run: new x axis, one full redraw
    qtbot.wait(50)
    assert len(full) == n + 1 and plot.ax_loss.get_xlim() == (0, 50)
