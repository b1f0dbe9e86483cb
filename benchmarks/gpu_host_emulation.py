"""The engine's host side in its GPU configuration, measured on any machine. Prints JSON.

    python benchmarks/gpu_host_emulation.py [--rate 50] [--sizes 2048 16384] [--json OUT]

The engine runs as it does on a GPU (its GPU chunk side and batch size, one stream, two
batches read ahead) with the model replaced by a stand-in that stacks each batch (as into
pinned memory), sleeps as long as a GPU computing ``--rate`` MP/s would (the GIL
released, as while a CUDA stream works) and returns labels with a tissue-like structure.
A low rate fills the pipeline (the memory a slow model leaves queued), a high one shows
the host's own limit (reads, decoding, writing).

* ``peak_growth_mb``: peak resident memory above the process before the run (fresh
  process per size); ``mpx_s``: the run's rate.

Inputs come from ``tiled_inference.py``'s cache (written once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _out import emit  # benchmarks/ is sys.path[0] when run as a script


class FakeGPU:
    """Stands in for :class:`napari_dfa.infer.predictor.Predictor`."""

    rate = 50.0

    def __init__(self, model, device, cfg) -> None:
        self.cfg = cfg

    def __call__(self, chunks, windows: list):
        import numpy as np

        batch = np.stack(windows)
        windows.clear()  # as the real predictor: the windows live on in the batch only
        time.sleep(batch.shape[0] * batch.shape[1] * batch.shape[2] / self.rate / 1e6)
        out = []
        for i, c in enumerate(chunks):
            cy, cx = c.core
            core = batch[i, cy.start : cy.stop, cx.start : cx.stop, 1]
            out.append(((core < 180).astype(np.uint8) + 1, None))
        return out


def child(args) -> None:
    import torch
    from tiled_inference import _peak_rss_mb, _reset_peak_rss

    import napari_dfa.infer.engine as engine
    from napari_dfa.io.images import open_image
    from napari_dfa.sample import load_default_model
    from napari_dfa.train import run_to_end

    FakeGPU.rate = args.rate
    engine.Predictor = FakeGPU
    model = load_default_model(device="cpu")
    image = open_image(args.input)
    gpu = torch.device("cuda")  # a device object only: nothing runs on it
    bs, streams = args.batch or engine.auto_batch(gpu), 1
    cfg = engine.EngineConfig(
        tile=engine.auto_tile(gpu),
        batch_size=bs,
        streams=streams,
        read_ahead=2 * bs * streams,  # what the engine reads ahead on a GPU
        device="cpu",
        tissue_detection=False,
        overwrite=True,
    )
    _reset_peak_rss()
    before = _peak_rss_mb()  # the peak, reset: the resident memory now
    t = time.perf_counter()
    res = run_to_end(engine.segment(image, model, args.out, cfg))
    el = time.perf_counter() - t
    n_px = res.shape[0] * res.shape[1]
    print(json.dumps({"peak_growth_mb": round(_peak_rss_mb() - before, 1), "mpx_s": round(n_px / el / 1e6, 2)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50.0, help="MP/s of the emulated GPU")
    ap.add_argument("--sizes", nargs="+", type=int, default=[2048, 16384])
    ap.add_argument("--batch", type=int, default=0, help="windows per batch (0 = the engine's GPU default)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "napari-dfa-bench"))
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if not Path("/proc/self/status").exists():
        raise SystemExit("this benchmark reads peak memory from /proc (Linux only)")

    from tiled_inference import make_zarr

    from napari_dfa.data.synthetic import generate_tissue

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    texture = generate_tissue((2048, 2048), seed=11).image
    import torch

    from napari_dfa.infer.engine import auto_batch, auto_tile

    gpu = torch.device("cuda")
    bs = args.batch or auto_batch(gpu)
    result: dict = {"rate_mpx_s": args.rate, "tile": auto_tile(gpu), "batch_size": bs, "read_ahead": 2 * bs, "runs": {}}
    for n in args.sizes:
        inp = make_zarr(cache / f"slide_{n}.zarr", n, texture)
        cmd = [sys.executable, __file__, "--child", "--rate", str(args.rate), "--batch", str(args.batch)]
        cmd += ["--input", str(inp)]
        cmd += ["--out", str(cache / f"emu_{n}.zarr")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        result["runs"][str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    emit(result, args.json)


if __name__ == "__main__":
    main()
