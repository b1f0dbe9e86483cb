"""Accuracy benchmark: DFA vs loss-reweighting, logit adjustment, CDB and a random forest.

Real data (``../shared/data``): wsss4luad (3 tissue classes, "normal" rare) and cpm15
nuclei (binary, background is a class); k-fold by image (k = 3), several seeds, two
annotation regimes (``dense`` masks, ``scribbles`` drawn by the project's scribble
function on ~2 % of labelled pixels). Every method gets the same training budget: either
the same number of optimisation steps of the same batch (``--steps``; measured seconds are
reported; results do not depend on how busy the machine was) or the same wall time
(``--seconds``: what a user waits for; needs an otherwise idle machine). CDB spends that
budget over its two stages. Runs are appended to a JSONL file and skipped when rerun, so the
benchmark can be interrupted and resumed.

    python benchmarks/accuracy.py run --datasets wsss4luad cpm15 --regimes dense scribbles \
        --methods plain inverse_freq median_freq effective_number focal logit_adjust cdb dfa rf \
        --seeds 0 1 2 --steps 120 --out benchmarks/results/accuracy.jsonl
    python benchmarks/accuracy.py report --out benchmarks/results/accuracy.jsonl --md docs/benchmark_tables.md

Methods: ``dfa`` is the default DFA configuration; ``plain``..``cdb`` use the same network
with bias ``none``; ``dfa:<placement>:<init>[:frozen]`` are DFA ablations; ``rf`` is the
ilastik/APOC-style random forest on scikit-image multiscale features; ``unet`` is a U-Net
ResNet-18 from scratch and ``unet:lite0`` a U-Net on the ImageNet EfficientNet-Lite0
encoder (``benchmarks/unet_baseline.py``). A suffix ``+cb`` / ``+nocb`` forces
class-balanced crop sampling on / off (default: on, except for the losses that re-weight
classes themselves).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import FIRST_DEFAULT_MODEL  # noqa: E402 - the start model of runs recorded without one

DATASETS = {
    # name: folder, class names, file ignore index (0 = unlabeled, None = every value a class)
    "wsss4luad": ("wsss4luad", ["tumor", "stroma", "normal"], 0),
    "cpm15": ("cpm15_nuclei", ["background", "nucleus"], None),
}
BASELINES = ("plain", "inverse_freq", "median_freq", "effective_number", "focal", "logit_adjust", "cdb")


def default_dfa() -> tuple[str, str, bool]:
    """``dfa`` = the package's default DFA configuration (placement, init, learnable)."""
    from napari_dfa.model import ModelConfig

    return ModelConfig.bias_placement, ModelConfig.bias_init, ModelConfig.bias_learnable


def load_init(init: str):
    """The starting model: ``default`` (shipped), ``none`` (a new model) or a model folder."""
    if init == "none":
        return None
    if init == "default":
        from napari_dfa.sample import load_default_model

        return load_default_model()
    from napari_dfa.checkpoint import load_model

    return load_model(init)


def start_model(init: str) -> str:
    """What a run starts from: ``scratch`` or the starting model's training date."""
    model = load_init(init)
    return "scratch" if model is None else model.training_summary.get("date", "unknown")


def run_key(r: dict) -> tuple:
    start = r.get("start_model", FIRST_DEFAULT_MODEL if r.get("init") == "default" else "scratch")
    return (r["dataset"], r["regime"], r["method"], r["fold"], r["seed"], start)


def load_dataset(name: str):
    folder, classes, ignore = DATASETS[name]
    data = SHARED / folder
    if not data.is_dir():
        raise SystemExit(f"{data} not found: this benchmark needs ../shared/data")
    with open(data / "index.csv") as fh:
        ids = sorted(row["id"] for row in csv.DictReader(fh))
    images = {i: iio.imread(data / "images" / f"{i}.png")[..., :3] for i in ids}
    masks = {i: iio.imread(data / "masks" / f"{i}.png") for i in ids}
    # internal convention: 0 = ignore/unlabeled, 1..K classes
    internal = {i: (m.astype(np.uint8) + 1 if ignore is None else m.astype(np.uint8)) for i, m in masks.items()}
    return ids, images, internal, classes


def folds_by_image(ids: list[str], k: int) -> list[list[str]]:
    return [ids[i::k] for i in range(k)]


def annotations(ids, masks, regime: str, fraction: float, seed: int, all_ids):
    from napari_dfa.data.scribbles import make_scribbles

    if regime == "dense":
        return [masks[i] for i in ids]
    return [make_scribbles(masks[i], fraction, seed=seed * 1000 + all_ids.index(i), ignore_index=0) for i in ids]


def parse_method(method: str):
    """-> (loss, placement, init, learnable)"""
    if method == "dfa":
        return ("plain", *default_dfa())
    if method.startswith("dfa:"):
        parts = method.split(":")
        return ("plain", parts[1], parts[2], not (len(parts) > 3 and parts[3] == "frozen"))
    if method in BASELINES:
        return (method, "none", "zero", False)
    raise SystemExit(f"unknown method {method}")


def split_balance(method: str) -> tuple[str, bool | None]:
    """``"plain+nocb"`` -> ``("plain", False)``; no suffix -> the trainer's automatic choice."""
    for suffix, value in (("+cb", True), ("+nocb", False)):
        if method.endswith(suffix):
            return method[: -len(suffix)], value
    return method, None


def train_and_predict(
    method,
    train_imgs,
    train_labs,
    test_imgs,
    classes,
    steps,
    seed,
    batch,
    crop,
    init="default",
    seconds=None,
    encoder_weights=None,
):
    method, balanced = split_balance(method)
    if method.startswith("unet"):
        from unet_baseline import unet_fit_predict

        from napari_dfa.model.loss_presets import loss_config

        if not seconds:
            raise SystemExit("the U-Net rows need a wall-time budget: --seconds")
        weights = None
        if method.endswith(":inverse_freq"):
            method = method.rsplit(":", 1)[0]
            weights = loss_config("inverse_freq", train_labs, len(classes)).class_weights
        t0 = time.time()
        preds, extra = unet_fit_predict(
            method,
            train_imgs,
            train_labs,
            test_imgs,
            seconds,
            seed=seed,
            batch=batch,
            crop=crop,
            class_weights=weights,
            class_balanced=True if balanced is None else balanced,
            encoder_weights=encoder_weights,
        )
        return preds, time.time() - t0, extra
    if method == "rf":
        from rf_anchor import rf_fit_predict

        t0 = time.time()
        preds = rf_fit_predict(train_imgs, train_labs, test_imgs, seed=seed)
        return preds, time.time() - t0, {}
    import torch

    from napari_dfa.predict import predict_image
    from napari_dfa.train import TrainConfig, run_to_end
    from napari_dfa.trainers import start_training

    loss, placement, bias_init, learnable = parse_method(method)
    cfg = TrainConfig(
        steps=steps if not seconds else 10**6,
        max_seconds=seconds,
        class_balanced=balanced,
        batch_size=batch,
        crop_size=crop,
        seed=seed,
        device="auto",
        bias_placement=placement,
        bias_init=bias_init,
        bias_learnable=learnable,
    )
    start = load_init(init)
    torch.manual_seed(seed)
    t0 = time.time()
    res = run_to_end(start_training(train_imgs, train_labs, classes, loss=loss, init=start, config=cfg))
    elapsed = time.time() - t0
    fb = res.model.focal_bias
    extra = {
        "train_steps": res.steps,
        "class_balanced": res.summary.get("class_balanced"),
        "bias_init": [round(float(v), 4) for v in fb.bias_init],
        "bias": [round(float(v), 4) for v in fb.bias.detach()],
        "prior": [round(float(v), 5) for v in fb.prior],
    }
    if "cdb" in res.summary:
        extra["cdb"] = res.summary["cdb"]
    preds = [predict_image(res.model, img) for img in test_imgs]
    return preds, elapsed, extra


def cmd_run(args) -> None:
    from napari_dfa.metrics import dataset_scores

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            done.add(run_key(json.loads(line)))
    start = start_model(args.init)
    loaded = {ds: load_dataset(ds) for ds in args.datasets}
    for seed in args.seeds:  # seed-major: a partial run still compares every method
        for ds in args.datasets:
            ids, images, masks, classes = loaded[ds]
            folds = folds_by_image(ids, args.k)
            for regime in args.regimes:
                for f, test_ids in enumerate(folds):
                    if args.folds is not None and f not in args.folds:
                        continue
                    train_ids = [i for i in ids if i not in test_ids]
                    labs = None
                    for method in args.methods:
                        key = (ds, regime, method, f, seed, start)
                        if key in done:
                            continue
                        if labs is None:
                            labs = annotations(train_ids, masks, regime, args.fraction, seed, ids)
                        preds, secs, extra = train_and_predict(
                            method,
                            [images[i] for i in train_ids],
                            labs,
                            [images[i] for i in test_ids],
                            classes,
                            args.steps,
                            seed,
                            args.batch,
                            args.crop,
                            args.init,
                            args.seconds,
                            args.encoder_weights,
                        )
                        s = dataset_scores(preds, [masks[i] for i in test_ids], len(classes), classes)
                        rec = {
                            "dataset": ds,
                            "regime": regime,
                            "method": method,
                            "fold": f,
                            "seed": seed,
                            "steps": args.steps,
                            "budget_seconds": args.seconds,
                            "batch": args.batch,
                            "crop": args.crop,
                            "init": args.init,
                            "start_model": start,
                            "train_seconds": round(secs, 1),
                            "annotated_px": int(sum((lab > 0).sum() for lab in labs)),
                            "labelled_px": int(sum((masks[i] > 0).sum() for i in train_ids)),
                            **s.to_dict(),
                            **extra,
                        }
                        with open(out, "a") as fh:
                            fh.write(json.dumps(rec) + "\n")
                        print(
                            f"{ds} {regime} {method:<22} fold {f} seed {seed}: mean Dice "
                            f"{rec['mean_dice']:.3f} ({secs:.0f}s)",
                            file=sys.stderr,
                            flush=True,
                        )


def cmd_report(args) -> None:
    from report import accuracy_report

    md, summary = accuracy_report(Path(args.out))
    print(json.dumps(summary, indent=2))
    if args.md:
        Path(args.md).write_text(md)
        print(f"wrote {args.md}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--datasets", nargs="+", default=list(DATASETS))
    r.add_argument("--regimes", nargs="+", default=["dense", "scribbles"])
    r.add_argument("--methods", nargs="+", default=[*BASELINES, "dfa", "rf"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--k", type=int, default=3)
    r.add_argument("--folds", nargs="+", type=int, help="run only these folds (default: all k)")
    r.add_argument("--steps", type=int, default=120)
    r.add_argument("--seconds", type=float, help="wall-time budget per training run (replaces --steps)")
    r.add_argument("--encoder-weights", help="ImageNet encoder safetensors for unet:lite0")
    r.add_argument("--batch", type=int, default=8)
    r.add_argument("--crop", type=int, default=256)
    r.add_argument("--fraction", type=float, default=0.02)
    r.add_argument("--init", default="default", help="'default' (shipped), 'none' (scratch) or a model folder")
    r.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "accuracy.jsonl"))
    r.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "accuracy.jsonl"))
    p.add_argument("--md")
    p.set_defaults(func=cmd_report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
