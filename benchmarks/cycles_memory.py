"""Repeated fine-tune + segment cycles: does memory grow, do threads leak? Prints JSON.

    python benchmarks/cycles_memory.py [--cycles 20] [--gui]

Without ``--gui`` the cycles call the core (``fine_tune`` + ``segment``) in one process;
with ``--gui`` they drive the napari widgets in one viewer session (needs an X server,
e.g. ``xvfb-run -a``): Fine-tune (tiny budget) then Segment, each in its thread worker,
the result added as layers, then removed again at the end of the cycle (so the memory
measured is what leaks, not results kept on purpose), as a user would.
Reports RSS after every cycle, ``growth_after_first`` = (last - first) / first (target
< 10 %) and the number of live Python threads after each cycle (target: constant; OS
threads, Qt's and torch's included, in ``os_threads``).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time

import numpy as np
import psutil
from _qt import wait_until as _wait


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def core_cycles(n: int, steps: int) -> tuple[list[float], list[int], list[int]]:
    import torch

    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.sample import load_default_model, load_sample
    from napari_dfa.train import TrainConfig, fine_tune, run_to_end

    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = load_sample()
    model = load_default_model()
    mem, threads, os_threads = [], [], []
    for i in range(n):
        cfg = TrainConfig(steps=steps, batch_size=2, crop_size=128, seed=i)
        model = run_to_end(fine_tune([s.image], [s.scribbles], s.class_names, init=model, config=cfg)).model
        res = run_to_end(segment(s.image, model, None, EngineConfig(tile=512, halo=32)))
        del res
        gc.collect()
        mem.append(round(rss_mb(), 1))
        threads.append(threading.active_count())
        os_threads.append(psutil.Process().num_threads())
    return mem, threads, os_threads


def gui_cycles(n: int, steps: int) -> tuple[list[float], list[int], list[int]]:
    import shutil
    from pathlib import Path

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_dfa._widgets.state import model_state

    stdout, sys.stdout = sys.stdout, sys.stderr  # napari prints notifications: stdout is for the JSON
    viewer = napari.Viewer(show=False)
    viewer.open_sample("napari-dfa", "tissue")
    _, ft = viewer.window.add_plugin_dock_widget("napari-dfa", "Fine-tune")
    _, seg = viewer.window.add_plugin_dock_widget("napari-dfa", "Segment")
    app = QApplication.instance()
    state = model_state(viewer)
    # the docks warm torch up and load the default model in background threads: let them finish
    _wait(app, lambda: not any(t.name == "napari-dfa-warm-up" for t in threading.enumerate()), 300)
    if not _wait(app, lambda: state.has_model, 300):
        raise RuntimeError("the Fine-tune dock did not load the default model")
    _wait(app, lambda: False, 1.0)

    image, scribbles = viewer.layers["tissue"], viewer.layers["scribbles"]
    ft.image.value, ft.annotations.value = image, scribbles
    ft.steps.value, ft.batch_size.value, ft.crop_size.value = steps, 2, 128
    ft.max_seconds.value, ft.device.value = 0, "cpu"
    ft.preview.value, ft.activity.value = False, False
    seg.image.value = image
    seg.tile.value, seg.device.value, seg.activity.value = 512, "cpu", False

    mem, threads, os_threads, outputs = [], [], [], []
    try:
        for i in range(n):
            before = set(viewer.layers)
            ft.start_button.native.click()
            if not ft.busy:
                raise RuntimeError(f"cycle {i}: Fine-tune did not start: {ft.status.value}")
            if not _wait(app, lambda: not ft.busy, 1800):
                raise RuntimeError(f"cycle {i}: Fine-tune still running after 30 min")
            seg.start_button.native.click()
            if not seg.busy:
                raise RuntimeError(f"cycle {i}: Segment did not start: {seg.status.value}")
            if not _wait(app, lambda: not seg.busy, 1800):
                raise RuntimeError(f"cycle {i}: Segment still running after 30 min")
            added = [layer for layer in viewer.layers if layer not in before]
            if not added:
                raise RuntimeError(f"cycle {i}: no segmentation layer was added: {seg.status.value}")
            for layer in added:
                if "path" in layer.metadata:
                    outputs.append(Path(layer.metadata["path"]))
                viewer.layers.remove(layer)
            del added, layer
            gc.collect()
            _wait(app, lambda: False, 0.5)  # let deferred deletions and queued signals run
            gc.collect()
            mem.append(round(rss_mb(), 1))
            threads.append(threading.active_count())
            os_threads.append(psutil.Process().num_threads())
            print(
                f"[cycles_memory] cycle {i}: rss {mem[-1]} MB, threads {threads[-1]} "
                f"(os {os_threads[-1]}), {ft.status.value[:60]!r}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        viewer.close()
        sys.stdout = stdout
        for path in outputs:  # the docks segment into temporary folders: don't leave them behind
            if path.parent.name.startswith("napari-dfa-"):
                shutil.rmtree(path.parent, ignore_errors=True)
    return mem, threads, os_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--gui", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    t0 = time.time()
    mem, threads, os_threads = (gui_cycles if args.gui else core_cycles)(args.cycles, args.steps)
    result = {
        "mode": "gui" if args.gui else "core",
        "cycles": args.cycles,
        "rss_mb": mem,
        "growth_after_first": round((mem[-1] - mem[0]) / mem[0], 4),
        "max_growth_after_first": round((max(mem) - mem[0]) / mem[0], 4),
        "threads": threads,
        "threads_constant": len(set(threads[1:])) <= 1,
        "os_threads": os_threads,
        # a leak grows with every cycle; lazily filled bounded pools (zarr's asyncio
        # executor starts up to cpu + 4 threads as needed) stop growing
        "no_thread_growth_in_second_half": max(threads[len(threads) // 2 :]) <= max(threads[: len(threads) // 2])
        and max(os_threads[len(os_threads) // 2 :]) <= max(os_threads[: len(os_threads) // 2]),
        "seconds": round(time.time() - t0, 1),
        "target": "growth_after_first < 0.10, no leaked threads",
    }
    text = json.dumps(result, indent=2)
    sys.__stdout__.write(text + "\n")  # napari may still redirect sys.stdout
    sys.__stdout__.flush()
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
