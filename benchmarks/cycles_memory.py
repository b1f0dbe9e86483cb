"""Repeated fine-tune + segment cycles: does memory grow, do threads leak? Prints JSON.

    python benchmarks/cycles_memory.py [--cycles 20] [--gui]

Without ``--gui`` the cycles call the core (``fine_tune`` + ``segment``) in one process;
with ``--gui`` they drive the napari widgets in one viewer session (needs an X server,
e.g. ``xvfb-run -a``): Fine-tune (tiny budget) then Segment, each in its thread worker,
results added as layers and the previous cycle's result layers removed, as a user would.
Reports RSS after every cycle, ``growth_after_first`` = (last - first) / first (target
< 10 %) and the number of live threads after each cycle (target: constant).
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time

import numpy as np
import psutil


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def core_cycles(n: int, steps: int) -> tuple[list[float], list[int]]:
    import torch

    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.sample import load_default_model, load_sample
    from napari_dfa.train import TrainConfig, fine_tune, run_to_end

    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = load_sample()
    model = load_default_model()
    mem, threads = [], []
    for i in range(n):
        cfg = TrainConfig(steps=steps, batch_size=2, crop_size=128, seed=i)
        model = run_to_end(fine_tune([s.image], [s.scribbles], s.class_names, init=model, config=cfg)).model
        res = run_to_end(segment(s.image, model, None, EngineConfig(tile=512, halo=32)))
        del res
        gc.collect()
        mem.append(round(rss_mb(), 1))
        threads.append(threading.active_count())
    return mem, threads


def gui_cycles(n: int, steps: int) -> tuple[list[float], list[int]]:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_dfa._sample_data import sample_tissue
    from napari_dfa._widgets.finetune_widget import FineTuneWidget
    from napari_dfa._widgets.segment_widget import SegmentWidget

    viewer = napari.Viewer(show=False)
    for data, meta, kind in sample_tissue():
        getattr(viewer, f"add_{kind}")(data, **meta)
    ft = FineTuneWidget(viewer)
    sg = SegmentWidget(viewer)
    app = QApplication.instance()

    def wait(widget, timeout=600):
        t0 = time.time()
        while widget.busy and time.time() - t0 < timeout:
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()

    mem, threads = [], []
    for _ in range(n):
        before = {layer.name for layer in viewer.layers}
        ft.configure_for_benchmark(steps=steps)
        ft.start()
        wait(ft)
        sg.configure_for_benchmark(tile=512)
        sg.start()
        wait(sg)
        for name in {layer.name for layer in viewer.layers} - before:
            viewer.layers.remove(name)
        gc.collect()
        app.processEvents()
        mem.append(round(rss_mb(), 1))
        threads.append(threading.active_count())
    viewer.close()
    return mem, threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--gui", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    t0 = time.time()
    mem, threads = (gui_cycles if args.gui else core_cycles)(args.cycles, args.steps)
    result = {
        "mode": "gui" if args.gui else "core",
        "cycles": args.cycles,
        "rss_mb": mem,
        "growth_after_first": round((mem[-1] - mem[0]) / mem[0], 4),
        "max_growth_after_first": round((max(mem) - mem[0]) / mem[0], 4),
        "threads": threads,
        "threads_constant": len(set(threads[1:])) <= 1,
        "seconds": round(time.time() - t0, 1),
        "target": "growth_after_first < 0.10, threads constant",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
