"""Where the tiled engine's time goes: the raw model at several input shapes, window reads
by thread count, and the engine end to end with one setting changed at a time. Prints
JSON (one line per measure as it goes, then the whole).

    python benchmarks/engine_variants.py [--json OUT] [--size N] [--device auto]

Default size: 16384^2 on a GPU, 4096^2 on a CPU (zarr input with 512-px zstd chunks, as
``tiled_inference.py``; tissue detection off). ``engine_numpy_in`` reads from memory
(no decoding), ``engine_nopyr`` writes no pyramid: the gaps to ``engine_default`` are
what input decoding and the pyramid cost. ``engine_null_model`` runs the engine with a
model that costs nothing (zero logits of the right shape): the host side's own limit
(reading, decoding, readout, writing, pyramid), what a GPU fast enough would leave.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _out import emit  # noqa: E402
from tiled_inference import make_zarr, raw_speed  # noqa: E402


class NullModel:
    """The engine's view of ``model`` with a forward pass that costs nothing: zero
    stride-4 logits of the shape the model would give."""

    def __init__(self, model) -> None:
        self.model = model
        self.num_classes = model.num_classes
        self.config = model.config

    def state_dict(self):
        return self.model.state_dict()

    def to(self, device):
        return self

    def eval(self):
        return self

    def predict_coarse(self, x):
        import torch

        b, _, h, w = x.shape
        return torch.zeros(b, self.num_classes, -(-h // 32) * 8, -(-w // 32) * 8, device=x.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "napari-dfa-bench"))
    args = ap.parse_args()

    import torch
    import zarr

    from napari_dfa.data.synthetic import generate_tissue
    from napari_dfa.device import describe_device, resolve_device
    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.io.images import open_image
    from napari_dfa.sample import load_default_model
    from napari_dfa.train import run_to_end

    res: dict = {"cpus": os.cpu_count(), "torch": torch.__version__}

    def say(key, value):
        res[key] = value
        print(key, json.dumps(value), file=sys.stderr, flush=True)

    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    say("device", describe_device(dev))
    model = load_default_model(device=str(dev))
    tex = generate_tissue((2176, 2176), seed=11).image
    n = args.size or (16384 if gpu else 4096)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    inp = make_zarr(cache / f"slide_{n}.zarr", n, generate_tissue((2048, 2048), seed=11).image)

    bs512 = 32 if gpu else 8
    say("raw_512", [round(v, 1) for v in raw_speed(model, dev, tex, (512, 512), bs512, 5, sustain=3.0)])
    say("raw_2112x4", round(raw_speed(model, dev, tex, (2112, 2112), 4 if gpu else 1, 3), 1))
    say("raw_1088x16", round(raw_speed(model, dev, tex, (1088, 1088), 16 if gpu else 1, 3), 1))
    if gpu:
        torch.backends.cudnn.benchmark = True
        say("raw_512_cudnn_bench", round(raw_speed(model, dev, tex, (512, 512), bs512, 5), 1))
        say("raw_2112x4_cudnn_bench", round(raw_speed(model, dev, tex, (2112, 2112), 4, 3), 1))
        torch.backends.cudnn.benchmark = False

    arr = zarr.open_array(str(inp), mode="r")
    g = n // 2048

    def window(i):
        y, x = (i % g) * 2048, (i // g) * 2048
        return np.asarray(arr[max(0, y - 32) : y + 2080, max(0, x - 32) : x + 2080])

    reads = {}
    for threads in (1, 4, 8, 12, 16):
        k = min(48, g * g)
        with ThreadPoolExecutor(threads) as ex:
            t = time.perf_counter()
            list(ex.map(window, range(k)))
            reads[threads] = round(k * 2048 * 2048 / (time.perf_counter() - t) / 1e6, 1)
    say("read_core_mpx_s_by_threads", reads)

    img = open_image(inp)

    def engine(name, image=img, model_=model, **kw):
        cfg = EngineConfig(device=args.device, tissue_detection=False, overwrite=True, **kw)
        t = time.perf_counter()
        r = run_to_end(segment(image, model_, cache / "variants_out.zarr", cfg))
        el = time.perf_counter() - t
        say("engine_" + name, {"mpx_s": round(n * n / el / 1e6, 1), "s": round(el, 2), "dev": r.device})

    engine("warm")
    engine("default")
    engine("streams1", streams=1)
    engine("streams2", streams=2)
    engine("readers3", read_workers=3)
    engine("readers12", read_workers=12)
    engine("bs8", batch_size=8)
    engine("bs2", batch_size=2)
    engine("nopyr", pyramid=False)
    engine("input_cache_off", input_cache_mb=0)
    engine("input_cache_256", input_cache_mb=256)
    engine("tile1024_bs16" if gpu else "tile1024", tile=1024, batch_size=16 if gpu else 0)
    engine("numpy_in", image=np.asarray(arr[:]))
    engine("null_model", model_=NullModel(model))
    engine("null_model_input_cache_off", model_=NullModel(model), input_cache_mb=0)
    if gpu:
        say("gpu_peak_mb", round(torch.cuda.max_memory_allocated() / 2**20))
    emit(res, args.json)


if __name__ == "__main__":
    main()
