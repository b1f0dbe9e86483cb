"""K-fold cross-validation by image of the ``napari-dfa`` CLI on a real dataset.

For each fold, the CLI trains on the other folds' images (with scribbles drawn from the
masks by ``napari_dfa.data.scribbles.make_scribbles``, or the dense masks) within a wall
time budget, then ``napari-dfa evaluate`` scores the held-out images against their dense
masks. Prints JSON (per fold and pooled over folds) and a markdown table.

    python benchmarks/cv_cli.py --dataset wsss4luad --k 3 --max-minutes 5 --regime scribbles

Needs ``../shared/data`` (not shipped with the project).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from _out import emit  # benchmarks/ is sys.path[0] when run as a script

from napari_dfa.data.scribbles import make_scribbles

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    # name: (folder, class names, ignore index)
    "wsss4luad": ("wsss4luad", ["tumor", "stroma", "normal"], "0"),
    "cpm15": ("cpm15_nuclei", ["background", "nucleus"], "none"),
}


def folds_by_image(ids: list[str], k: int) -> list[list[str]]:
    ids = sorted(ids)
    return [ids[i::k] for i in range(k)]


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="wsss4luad")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--max-minutes", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=3000, help="step cap (the time budget normally binds)")
    ap.add_argument("--regime", choices=["scribbles", "dense"], default="scribbles")
    ap.add_argument("--fraction", type=float, default=0.02, help="scribbled fraction of labelled pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="none", help="'none' (from scratch), 'default' or a model folder")
    ap.add_argument("--extra", default="", help="extra arguments for 'napari-dfa train', quoted")
    ap.add_argument("--json", help="write the JSON result here")
    args = ap.parse_args()

    folder, classes, ignore = DATASETS[args.dataset]
    data = SHARED / folder
    if not data.is_dir():
        raise SystemExit(f"{data} not found: this benchmark needs ../shared/data")
    with open(data / "index.csv") as fh:
        ids = [row["id"] for row in csv.DictReader(fh)]
    folds = folds_by_image(ids, args.k)
    cli = [sys.executable, "-m", "napari_dfa.cli"]
    results = []
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="dfa-cv-") as tmp:
        tmp = Path(tmp)
        for f, test_ids in enumerate(folds):
            train_ids = [i for i in ids if i not in test_ids]
            fd = tmp / f"fold{f}"
            for sub in ("train_img", "train_lab", "test_img", "test_lab"):
                (fd / sub).mkdir(parents=True)
            for i in train_ids:
                (fd / "train_img" / f"{i}.png").symlink_to(data / "images" / f"{i}.png")
                mask = iio.imread(data / "masks" / f"{i}.png")
                lab = mask
                if args.regime == "scribbles":
                    seed = args.seed * 1000 + ids.index(i)
                    if ignore == "none":  # every mask value is a class: unlabeled scribble pixels = 255
                        lab = make_scribbles(mask, args.fraction, seed=seed, ignore_index=None).astype(np.int16) - 1
                        lab[lab < 0] = 255
                    else:
                        lab = make_scribbles(mask, args.fraction, seed=seed, ignore_index=0)
                iio.imwrite(fd / "train_lab" / f"{i}.png", lab.astype(np.uint8))
            for i in test_ids:
                (fd / "test_img" / f"{i}.png").symlink_to(data / "images" / f"{i}.png")
                (fd / "test_lab" / f"{i}.png").symlink_to(data / "masks" / f"{i}.png")
            train_ignore = ("255" if ignore == "none" else "0") if args.regime == "scribbles" else ignore
            model = fd / "model"
            t0 = time.time()
            cmd = [
                *cli,
                "train",
                "--images",
                str(fd / "train_img"),
                "--labels",
                str(fd / "train_lab"),
                "--classes",
                ",".join(classes),
                "--ignore-index",
                train_ignore,
                "--out",
                str(model),
                "--max-minutes",
                str(args.max_minutes),
                "--steps",
                str(args.steps),
                "--seed",
                str(args.seed),
            ]
            if args.init != "none":
                cmd += ["--init", args.init]
            cmd += args.extra.split()
            run(cmd)
            train_s = time.time() - t0
            scores_path = fd / "scores.json"
            run(
                [
                    *cli,
                    "evaluate",
                    "--model",
                    str(model),
                    "--images",
                    str(fd / "test_img"),
                    "--labels",
                    str(fd / "test_lab"),
                    "--ignore-index",
                    ignore,
                    "--json",
                    str(scores_path),
                ]
            )
            scores = json.loads(scores_path.read_text())
            scores["train_seconds"] = round(train_s, 1)
            scores["fold"] = f
            scores["test_ids"] = test_ids
            results.append(scores)
            print(f"fold {f}: mean Dice {scores['mean_dice']:.3f} (train {train_s:.0f}s)", file=sys.stderr)
    per_class = {c: [r["classes"][c]["dice"] for r in results] for c in classes}
    summary = {
        "dataset": args.dataset,
        "regime": args.regime,
        "k": args.k,
        "max_minutes": args.max_minutes,
        "init": args.init,
        "extra": args.extra,
        "seed": args.seed,
        "mean_dice_per_fold": [r["mean_dice"] for r in results],
        "mean_dice": float(np.mean([r["mean_dice"] for r in results])),
        "mean_iou": float(np.mean([r["mean_iou"] for r in results])),
        "class_dice_mean_over_folds": {c: float(np.nanmean(v)) for c, v in per_class.items()},
        "folds": results,
        "total_seconds": round(time.time() - t_all, 1),
    }
    emit(summary, args.json)
    print("\n| fold | " + " | ".join(classes) + " | mean Dice | train s |")
    print("|---|" + "---|" * (len(classes) + 2))
    for r in results:
        cells = " | ".join(f"{r['classes'][c]['dice']:.3f}" for c in classes)
        print(f"| {r['fold']} | {cells} | {r['mean_dice']:.3f} | {r['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()
