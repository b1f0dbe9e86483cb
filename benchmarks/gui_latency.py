"""Does the viewer stay responsive while the widgets train and segment? (prints JSON)

A 10 ms QTimer probe runs on napari's event loop; a gap between two ticks is time the
GUI thread could not react (a stall). It runs while idle, during fine-tunes started
from the Fine-tune widget and during a tiled segmentation started from the Segment
widget; we also time how fast Cancel stops each. Training speed in the widget's worker
thread is compared with the same training loop outside napari (the main thread of a
plain process, no event loop), with the same torch thread count (the widget's default:
all cores but one) and with all cores.

Scenarios: napari's activity bar on/off (its animated indicator redraws the window ~30
times a second), live preview on, a hidden viewer (no window to draw: the cost of the
worker, signals and handlers alone). "one_repaint_ms" is what one repaint of a dock
costs here (the whole window is composed in software under Xvfb).

    xvfb-run -a python benchmarks/gui_latency.py            # headless (Xvfb)
    python benchmarks/gui_latency.py --steps 40 --batch 8 --crop 256

Targets (issue 5): worst stall < 100 ms; worker steps/s >= 0.9 x outside napari.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from _qt import wait_until as _wait


def _log(msg: str) -> None:
    print(f"[gui_latency] {msg}", file=sys.stderr, flush=True)


def _reexec_under_xvfb() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") or not shutil.which("xvfb-run"):
        return
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
    sys.exit(subprocess.call(cmd))


class Probe:
    """Records the gaps between ticks of a QTimer on the GUI thread."""

    def __init__(self, interval_ms: int = 10, stall_ms: float = 60.0) -> None:
        import threading

        from qtpy.QtCore import QTimer

        self.interval = interval_ms
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []
        self.stall_ms = stall_ms
        self.samples: list[tuple[float, str]] = []  # (time, GUI-thread stack) during stalls
        self._main = threading.get_ident()
        self._running = threading.Event()
        threading.Thread(target=self._watch, name="stall-sampler", daemon=True).start()

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def _watch(self) -> None:
        """While a gap is longer than ``stall_ms``, sample what the GUI thread is running
        every 10 ms (its Python stack: where the event loop is stuck)."""
        import traceback

        while True:
            self._running.wait()
            time.sleep(0.01)
            ticks = self.ticks
            if not ticks or (time.perf_counter() - ticks[-1]) * 1000 < self.stall_ms:
                continue
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            tail = traceback.extract_stack(frame)[-4:]
            key = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(tail))
            self.samples.append((time.perf_counter(), key))

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self.samples = []
        self.timer.start()
        self._running.set()

    def stop(self) -> dict:
        self.timer.stop()
        self._running.clear()
        res = self._stats(np.asarray(self.ticks))
        res["stall_samples"] = self._top(self.samples)
        return res

    @staticmethod
    def _top(samples) -> dict:
        """ms spent in each GUI-thread stack during stalls (10 ms samples), top 5."""
        counts: dict[str, int] = {}
        for _, key in samples:
            counts[key] = counts.get(key, 0) + 1
        return {k: 10 * v for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:5]}

    def window(self, t0: float, t1: float) -> dict:
        """Stats of the gaps that ended between ``t0`` and ``t1`` (e.g. first to last step)."""
        ticks = np.asarray(self.ticks)
        res = self._stats(ticks[(ticks >= t0) & (ticks <= t1)])
        res["stall_samples"] = self._top([s for s in self.samples if t0 <= s[0] <= t1])
        return res

    @staticmethod
    def _stats(ticks: np.ndarray) -> dict:
        gaps = np.diff(ticks) * 1000.0 if len(ticks) > 1 else np.zeros(1)
        return {
            "worst_stall_ms": round(float(gaps.max()), 1),
            "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1),
            "median_gap_ms": round(float(np.median(gaps)), 1),
            "gaps_over_100ms": int((gaps > 100).sum()),
            "ticks": len(gaps),
        }


def _stamp(times: list, event, attr: str) -> None:
    if hasattr(event, attr):  # a training step / tile batch, not a status or preview event
        times.append(time.perf_counter())


def _plain_loop(images, labels, names, init, cfg, threads: int) -> float:
    """steps/s of the same training outside napari: the main thread, no event loop."""
    import torch

    from napari_dfa.train import fine_tune, run_to_end

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        res = run_to_end(fine_tune(images, labels, names, init=init, config=cfg))
    finally:
        torch.set_num_threads(before)
    return res.steps / res.elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--seg-size", type=int, default=2304, help="side of the segmented image (px)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--preview-every", type=int, default=5)
    args = ap.parse_args()
    _reexec_under_xvfb()

    import threading

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_dfa._widgets._common import default_threads
    from napari_dfa._widgets.state import model_state
    from napari_dfa.data.regions import annotated_regions, read_region
    from napari_dfa.model.adapt import copy_model
    from napari_dfa.sample import load_default_model, load_sample
    from napari_dfa.train import TrainConfig

    sys.stdout = sys.stderr  # napari prints notifications to stdout: keep stdout for the JSON
    cores, dflt = os.cpu_count() or 1, default_threads()
    default = load_default_model()
    s = load_sample()
    out: dict = {
        "machine": {
            "cpu_cores": cores,
            "torch": torch.__version__,
            "load_avg_1min_at_start": os.getloadavg()[0],
            "display": os.environ.get("DISPLAY"),
            "widget_default_threads": dflt,
        },
        "settings": {
            "steps": args.steps,
            "batch": args.batch,
            "crop": args.crop,
            "tile": args.tile,
            "seg_image_px": args.seg_size,
            "preview_every": args.preview_every,
        },
    }

    def open_viewer(show: bool):
        viewer = napari.Viewer(show=show)
        viewer.window.resize(1600, 1000)
        viewer.open_sample("napari-dfa", "tissue")
        _, ft = viewer.window.add_plugin_dock_widget("napari-dfa", "Fine-tune")
        _, seg = viewer.window.add_plugin_dock_widget("napari-dfa", "Segment")
        app = QApplication.instance()
        _wait(app, lambda: not any(t.name == "napari-dfa-warm-up" for t in threading.enumerate()), 120)
        _wait(app, lambda: False, 1.0)
        return viewer, ft, seg, app

    viewer, ft, seg, app = open_viewer(show=True)
    state = model_state(viewer)
    probe = Probe()

    def finetune(threads: int, preview: bool = False, activity: bool = True, w=None, st=None) -> dict:
        w, st = w or ft, st or state
        w.steps.value, w.batch_size.value, w.crop_size.value = args.steps, args.batch, args.crop
        w.max_seconds.value, w.device.value, w.threads.value = 0, "cpu", threads
        w.preview.value, w.preview_every.value, w.activity.value = preview, args.preview_every, activity
        st.set_model(copy_model(default), "shipped default model")
        steps_at: list[float] = []
        probe.start()
        t0 = time.perf_counter()
        w.start_button.native.click()
        click_ms = (time.perf_counter() - t0) * 1000
        w._worker.yielded.connect(lambda ev: steps_at.append(time.perf_counter()) if hasattr(ev, "loss") else None)
        assert _wait(app, lambda: not w.busy, 3600)
        res = probe.stop()
        res["while_training"] = probe.window(steps_at[0], steps_at[-1]) if len(steps_at) > 1 else None
        summary = st.model.training_summary
        res.update(
            steps_per_s=round(summary["steps"] / summary["elapsed_s"], 3),
            torch_threads=threads,
            start_click_handler_ms=round(click_ms, 1),
        )
        return res

    regions = annotated_regions(s.scribbles, margin=args.crop)
    images = [read_region(s.image, r) for r in regions]
    labels = [read_region(s.scribbles, r) for r in regions]
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, crop_size=args.crop, device="cpu")

    def plain(threads: int) -> float:
        return round(_plain_loop(images, labels, s.class_names, default, cfg, threads), 3)

    probe.start()
    _wait(app, lambda: False, 3.0)
    out["idle"] = probe.stop()
    costs = []
    for i in range(10):
        t0 = time.perf_counter()
        ft.status.value = f"repaint test {i}"
        app.processEvents()
        costs.append((time.perf_counter() - t0) * 1000)
        _wait(app, lambda: False, 0.1)
    out["one_repaint_ms"] = round(float(np.median(costs)), 1)

    # a hidden viewer: no window to draw, the worker, signals and handlers alone
    hidden, hft, _hseg, app = open_viewer(show=False)
    _log("finetune_hidden_viewer")
    out["finetune_hidden_viewer"] = finetune(dflt, activity=False, w=hft, st=model_state(hidden))

    warm = TrainConfig(steps=2, batch_size=args.batch, crop_size=args.crop, device="cpu")
    _plain_loop(images, labels, s.class_names, default, warm, cores)  # warm-up
    plain_runs = {dflt: [], cores: []}
    _log("finetune_activity_on")
    out["finetune_activity_on"] = finetune(dflt, activity=True)
    _log("finetune_activity_off")
    # the default setting, three times, each followed by the same loop outside napari: the
    # machine's speed drifts by ±20 % within minutes, so compare medians of interleaved runs
    off_runs = []
    for _ in range(3):
        off_runs.append(finetune(dflt, activity=False))
        plain_runs[dflt].append(plain(dflt))
    worst = max(off_runs, key=lambda r: r["while_training"]["worst_stall_ms"])
    out["finetune_activity_off"] = dict(worst, steps_per_s=float(np.median([r["steps_per_s"] for r in off_runs])))
    out["finetune_activity_off"]["steps_per_s_runs"] = [r["steps_per_s"] for r in off_runs]
    out["finetune_activity_off"]["worst_stall_ms"] = max(r["worst_stall_ms"] for r in off_runs)
    plain_runs[cores].append(plain(cores))
    _log("finetune_activity_off_preview")
    out["finetune_activity_off_preview"] = finetune(dflt, preview=True, activity=False)
    _log("finetune_all_cores_activity_off")
    out["finetune_all_cores_activity_off"] = finetune(cores, activity=False)
    plain_runs[dflt].append(plain(dflt))

    _log("finetune cancel")
    ft.steps.value, ft.preview.value, ft.activity.value, ft.threads.value = 10_000, False, False, dflt
    ft.start_button.native.click()
    _wait(app, lambda: len(ft.plot.steps) >= 2, 600)
    t0 = time.perf_counter()
    ft.cancel_button.native.click()
    _wait(app, lambda: not ft.busy, 600)
    out["finetune_cancel_s"] = round(time.perf_counter() - t0, 3)

    reps = -(-args.seg_size // s.image.shape[0])
    big = np.tile(s.image, (reps, reps, 1))[: args.seg_size, : args.seg_size]
    seg.image.value = viewer.add_image(big, name="big", rgb=True)
    seg.tile.value, seg.device.value, seg.threads.value = args.tile, "cpu", dflt
    for activity in (True, False):
        _log(f"segment, activity bar {activity}")
        seg.activity.value = activity
        tiles_at: list[float] = []
        probe.start()
        t0 = time.perf_counter()
        seg.start_button.native.click()
        seg._worker.yielded.connect(lambda ev, at=tiles_at: _stamp(at, ev, "done"))
        assert _wait(app, lambda: not seg.busy, 3600)
        res = probe.stop()
        res["while_segmenting"] = probe.window(tiles_at[0], tiles_at[-1]) if len(tiles_at) > 1 else None
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        res["status"] = seg.status.value
        out[f"segment_activity_{'on' if activity else 'off'}"] = res
    _log("segment cancel")
    seg.start_button.native.click()
    _wait(app, lambda: seg.progress.value > 0, 600)
    t0 = time.perf_counter()
    seg.cancel_button.native.click()
    _wait(app, lambda: not seg.busy, 600)
    out["segment_cancel_s"] = round(time.perf_counter() - t0, 3)
    plain_runs[dflt].append(plain(dflt))

    same = float(np.median(plain_runs[dflt]))
    out["finetune_outside_napari_steps_per_s"] = {f"{k}_threads": v for k, v in plain_runs.items()}
    out["finetune_speed_ratio"] = {
        "activity_on_vs_outside": round(out["finetune_activity_on"]["steps_per_s"] / same, 3),
        "activity_off_vs_outside": round(out["finetune_activity_off"]["steps_per_s"] / same, 3),
        "activity_off_preview_vs_outside": round(out["finetune_activity_off_preview"]["steps_per_s"] / same, 3),
        "hidden_viewer_vs_outside": round(out["finetune_hidden_viewer"]["steps_per_s"] / same, 3),
        "all_cores_vs_outside_all_cores": round(
            out["finetune_all_cores_activity_off"]["steps_per_s"] / float(np.median(plain_runs[cores])), 3
        ),
    }
    out["machine"]["load_avg_1min_at_end"] = os.getloadavg()[0]
    stalls = [out[k]["worst_stall_ms"] for k in ("finetune_activity_off", "segment_activity_off")]
    running = [
        out["finetune_activity_off"]["while_training"]["worst_stall_ms"],
        out["segment_activity_off"]["while_segmenting"]["worst_stall_ms"],
    ]
    out["targets_met"] = {
        # from the first step / tile to the last (the job running)
        "worst_stall_under_100ms_while_running": max(running) < 100,
        # from the Start click to the result shown (napari adding the result layer included)
        "worst_stall_under_100ms": max(stalls) < 100,
        "worker_speed_at_least_0.9x": out["finetune_speed_ratio"]["activity_off_vs_outside"] >= 0.9,
        "cancel_under_1s": max(out["finetune_cancel_s"], out["segment_cancel_s"]) < 1.0,
    }
    sys.__stdout__.write(json.dumps(out, indent=2) + "\n")  # napari redirects sys.stdout while a viewer is open
    sys.__stdout__.flush()
    hidden.close()
    viewer.close()


if __name__ == "__main__":
    main()
