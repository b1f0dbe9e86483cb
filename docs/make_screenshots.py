"""Make the user guide's screenshots (docs/images/*.png) by driving the real widgets.

    xvfb-run -a python docs/make_screenshots.py        # headless; re-executes itself under
    python docs/make_screenshots.py                    # xvfb-run when there is no display

Every image is the whole napari window (``viewer.screenshot(canvas_only=False)``) with
one napari-dfa dock open, after the widget did its work on the shipped sample (CPU,
small budgets: about 2 minutes in all on a small CPU).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
SIZE = (1500, 950)


def _reexec_under_xvfb() -> None:
    if os.environ.get("DISPLAY") or not shutil.which("xvfb-run"):
        return
    cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {SIZE[0] + 100}x{SIZE[1] + 100}x24", sys.executable, *sys.argv]
    sys.exit(subprocess.call(cmd))


def _wait(pred, timeout: float = 600.0) -> None:
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("a widget job did not finish in time")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):  # let the last repaints land
        app.processEvents()
        time.sleep(0.01)


def _settle(seconds: float = 6.0) -> None:
    """Let napari's notification toasts time out and lazy data render."""
    t0 = time.perf_counter()
    _wait(lambda: time.perf_counter() - t0 > seconds)


def _shot(viewer, name: str) -> None:
    from PIL import Image

    path = IMAGES / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    # 256 colours, dithered: ~4x smaller files, no visible difference in these screenshots
    image = Image.open(path).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True
    )
    print(f"wrote {path}")


def main() -> None:
    _reexec_under_xvfb()
    import napari
    import numpy as np

    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari-dfa")
    viewer.window.resize(*SIZE)
    viewer.open_sample("napari-dfa", "tissue")
    viewer.layers["scribbles"].opacity = 1.0

    def dock(name: str):
        return viewer.window.add_plugin_dock_widget("napari-dfa", name)

    # Model: the shipped default model
    model_dock, model = dock("Model")
    model.default_button.native.click()
    _wait(lambda: model.state.has_model and model.default_button.enabled)
    _shot(viewer, "model")
    viewer.window.remove_dock_widget(model_dock)

    # Fine-tune with the live preview of the view
    ft_dock, ft = dock("Fine-tune")
    ft.steps.value, ft.batch_size.value, ft.crop_size.value, ft.max_seconds.value = 40, 4, 128, 0
    ft.preview.value, ft.preview_every.value = True, 10
    viewer.scene.camera.center = (384, 384)
    viewer.scene.camera.zoom = 1.1
    ft.start_button.native.click()
    _wait(lambda: not ft.busy)
    viewer.layers["DFA live preview"].opacity = 0.45
    viewer.layers.selection.active = viewer.layers["scribbles"]
    _shot(viewer, "finetune")
    viewer.window.remove_dock_widget(ft_dock)
    viewer.layers.remove("DFA live preview")

    # Segment the sample with per-class probabilities
    seg_dock, seg = dock("Segment")
    seg.tile.value, seg.probabilities.value = 512, "uint8"
    seg.start_button.native.click()
    _wait(lambda: not seg.busy)
    viewer.layers["scribbles"].visible = False
    viewer.layers["tissue DFA segmentation"].opacity = 0.5
    viewer.layers.selection.active = viewer.layers["tissue DFA segmentation"]
    viewer.reset_view()
    _shot(viewer, "segment")
    viewer.window.remove_dock_widget(seg_dock)
    for layer in [lay for lay in viewer.layers if lay.name.startswith("tissue P(")]:
        viewer.layers.remove(layer)
    viewer.layers["tissue DFA segmentation"].visible = False

    # Class difficulty: bias chart and table, attention maps, a difficulty map
    diff_dock, diff = dock("Class difficulty")
    diff.max_side.value = 768
    diff.show_attention()
    _wait(lambda: not diff.busy)
    names = model.state.model.config.class_names
    for n in names:
        viewer.layers[f"attention: {n}"].visible = n in ("lymphocytes", "mucin")
    viewer.layers["tissue"].opacity = 0.6
    viewer.layers.selection.active = viewer.layers["attention: lymphocytes"]
    _settle()
    _shot(viewer, "difficulty_attention")
    viewer.layers["tissue"].opacity = 1.0
    for n in names:
        viewer.layers[f"attention: {n}"].visible = False
    diff.kind.value = "entropy"
    diff.show_difficulty()
    _wait(lambda: not diff.busy)
    _settle()
    _shot(viewer, "difficulty_map")
    viewer.close()

    # The generated whole slide: multiscale, scribbles in one region, fine-tune reads a crop
    viewer = napari.Viewer(show=True, title="napari-dfa")
    viewer.window.resize(*SIZE)
    viewer.open_sample("napari-dfa", "slide")
    _, ft = viewer.window.add_plugin_dock_widget("napari-dfa", "Fine-tune")
    ft.steps.value, ft.batch_size.value, ft.crop_size.value, ft.max_seconds.value = 10, 4, 128, 0
    ft.start_button.native.click()
    _wait(lambda: not ft.busy)
    regions = ft.state.model.training_summary["regions"]
    viewer.add_shapes(
        [np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]]) for y0, x0, y1, x1 in regions],
        shape_type="rectangle",
        edge_color="yellow",
        face_color="transparent",
        edge_width=64,
        name="training crops",
    )
    viewer.reset_view()
    _settle()
    _shot(viewer, "slide")
    # zoomed in at full resolution where the largest crop's strokes are: level 0 is
    # rendered chunk by chunk (the coarser levels are a colour preview)
    y0, x0, y1, x1 = max(regions, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
    strokes = np.argwhere(np.asarray(viewer.layers["slide scribbles"].data[y0:y1, x0:x1]))
    cy, cx = strokes.mean(0) + (y0, x0)
    viewer.layers["training crops"].visible = False
    viewer.layers.selection.active = viewer.layers["slide scribbles"]
    viewer.scene.camera.center = (cy, cx)
    viewer.scene.camera.zoom = 1.0
    _settle(6.0)
    _shot(viewer, "slide_zoom")
    viewer.close()


if __name__ == "__main__":
    main()
