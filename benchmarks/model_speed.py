"""Forward throughput of the default model architecture with each DFA bias placement.

Prints JSON: tiles/s on 512x512 tiles for bias ``query``, ``key`` and ``none``, and the
throughput ratio of each DFA placement to ``none`` (target: the bias costs <= 5 %).

    python benchmarks/model_speed.py [--batch 8] [--repeats 5] [--device auto] [--json OUT]

Placements are measured interleaved (round-robin, best of ``repeats``) so that a
machine-wide slowdown affects all of them alike.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _out import emit  # benchmarks/ is sys.path[0] when run as a script

from napari_dfa.device import describe_device, resolve_device
from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.sample import default_model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json")
    args = ap.parse_args()
    device = resolve_device(args.device)
    try:
        base = json.loads((default_model_dir() / "config.json").read_text())["model"]
    except Exception:  # noqa: BLE001 - before the default model exists
        base = ModelConfig(class_names=[f"c{i}" for i in range(5)]).to_dict()
    models = {}
    for placement in ("query", "key", "none"):
        torch.manual_seed(0)
        cfg = ModelConfig.from_dict({**base, "bias_placement": placement})
        models[placement] = DFASegmenter(cfg).to(device).eval()
    x = torch.rand(args.batch, 3, args.tile, args.tile, device=device)
    amp = device.type == "cuda"
    best = {p: float("inf") for p in models}
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for m in models.values():
            m(x)  # warm-up
        for _ in range(args.repeats):
            for p, m in models.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                m(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best[p] = min(best[p], time.perf_counter() - t)
    tps = {p: args.batch / t for p, t in best.items()}
    result = {
        "device": describe_device(device),
        "tile": args.tile,
        "batch": args.batch,
        "dtype": "bf16" if amp else "fp32",
        "tiles_per_s": {p: round(v, 2) for p, v in tps.items()},
        "mpx_per_s": {p: round(v * args.tile**2 / 1e6, 2) for p, v in tps.items()},
        "ratio_to_none": {p: round(tps[p] / tps["none"], 3) for p in ("query", "key")},
        "bias_cost_pct": {p: round(100 * (1 - tps[p] / tps["none"]), 1) for p in ("query", "key")},
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
