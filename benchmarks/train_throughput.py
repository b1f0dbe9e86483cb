"""Fine-tuning throughput: steps/s and the share of time the loop waits for data.

Fine-tunes the shipped default model on ``../shared/data/wsss4luad`` (dense masks; the
shipped sample with its scribbles when that folder is absent) for ``--steps`` steps or
``--seconds`` seconds, once per ``--prefetch`` depth (0 = batches read in the loop), after
an untimed warm-up run so that the order of the runs does not matter. Prints JSON keyed
by depth: steps/s (overall, and after ``--warmup`` steps), the loop's data wait, and, for
comparison, the sampler's and the augmentation's time alone per batch.

    python benchmarks/train_throughput.py [--batch 16] [--crop 256] [--device auto] \
        [--seconds 60] [--prefetch 2 0] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from _out import emit  # benchmarks/ is sys.path[0] when run as a script

from napari_dfa.data.augment import augment_batch
from napari_dfa.data.samples import AnnotatedImage, CropSampler
from napari_dfa.device import describe_device, resolve_device
from napari_dfa.sample import load_default_model, load_sample
from napari_dfa.train import TrainConfig, fine_tune

WSSS = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsss4luad"
WSSS_CLASSES = ["tumor", "stroma", "normal"]


def load_data() -> tuple[str, list[np.ndarray], list[np.ndarray], list[str]]:
    if (WSSS / "images").is_dir():
        ids = sorted(p.stem for p in (WSSS / "images").glob("*.png"))
        images = [np.asarray(iio.imread(WSSS / "images" / f"{i}.png"))[..., :3] for i in ids]
        masks = [np.asarray(iio.imread(WSSS / "masks" / f"{i}.png")).astype(np.uint8) for i in ids]
        return "wsss4luad (dense masks)", images, masks, WSSS_CLASSES
    s = load_sample()
    return "shipped sample (scribbles)", [s.image], [s.scribbles], s.class_names


def data_alone(images, labels, k: int, cfg: TrainConfig, device: torch.device, n: int) -> dict[str, float]:
    """Seconds per batch of the sampler (CPU) and of the augmentation (device) alone."""
    data = [AnnotatedImage(i, m) for i, m in zip(images, labels)]
    sampler = CropSampler(data, k, cfg.crop_size, True, cfg.augment, seed=cfg.seed)
    gen = torch.Generator().manual_seed(0)
    t_sample = t_aug = 0.0
    for i in range(n + 1):
        t = time.perf_counter()
        x, y = sampler.batch(cfg.batch_size, i)
        t1 = time.perf_counter()
        xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        augment_batch(xd, yd, cfg.crop_size, cfg.augment, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first batch warms up
            t_sample += t1 - t
            t_aug += time.perf_counter() - t1
    return {"sampler_s_per_batch": round(t_sample / n, 4), "augment_s_per_batch": round(t_aug / n, 4)}


def run(images, labels, names, cfg: TrainConfig, warmup: int) -> dict:
    init = load_default_model(cfg.device)
    gen = fine_tune(images, labels, names, init=init, config=cfg)
    t_warm, s_warm = None, 0
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            res = stop.value
            break
        if ev.step == warmup:
            t_warm, s_warm = ev.elapsed, ev.step
    steps, elapsed = res.steps, res.elapsed
    after = (steps - s_warm) / (elapsed - t_warm) if t_warm is not None and steps > s_warm else None
    return {
        "prefetch": cfg.prefetch,
        "steps": steps,
        "elapsed_s": round(elapsed, 2),
        "steps_per_s": round(steps / elapsed, 3),
        "s_per_step": round(elapsed / max(steps, 1), 4),
        "steps_per_s_after_warmup": round(after, 3) if after else None,
        "data_wait_s": res.summary["data_wait_s"],
        "data_wait_fraction": res.summary["data_wait_fraction"],
        "final_loss": round(res.final_loss, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--prefetch", type=int, nargs="+", default=[2, 0])
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of steps_per_s_after_warmup")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--data-batches", type=int, default=10, help="batches timed for the data-alone figures")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    source, images, labels, names = load_data()
    base = TrainConfig(
        steps=args.steps,
        max_seconds=args.seconds,
        batch_size=args.batch,
        crop_size=args.crop,
        device=str(device),
    )
    result = {
        "device": describe_device(device),
        "torch_threads": torch.get_num_threads(),
        "data": source,
        "images": len(images),
        "batch": args.batch,
        "crop": args.crop,
        "amp": base.amp and device.type == "cuda",
        "data_alone": data_alone(images, labels, len(names), base, device, args.data_batches),
        "runs": {},
    }
    run(images, labels, names, replace(base, steps=args.warmup, max_seconds=None), args.warmup)  # untimed warm-up
    for depth in args.prefetch:
        cfg = replace(base, prefetch=depth)
        result["runs"][str(depth)] = run(images, labels, names, cfg, args.warmup)
    emit(result, args.json)


if __name__ == "__main__":
    main()
