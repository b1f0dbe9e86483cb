"""Tables from the accuracy benchmark's JSONL (mean ± std over seeds of the fold-mean)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def aggregate(records: list[dict]) -> dict:
    """{(dataset, regime, method): stats} with per-seed fold means."""
    groups: dict = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["regime"], r["method"])].append(r)
    out = {}
    for key, rs in groups.items():
        by_seed: dict = defaultdict(list)
        for r in rs:
            by_seed[r["seed"]].append(r)
        classes = list(rs[0]["classes"])
        seed_dice, seed_iou, seed_cls = [], [], defaultdict(list)
        for seed, srs in sorted(by_seed.items()):
            seed_dice.append(np.mean([r["mean_dice"] for r in srs]))
            seed_iou.append(np.mean([r["mean_iou"] for r in srs]))
            for c in classes:
                vals = [r["classes"][c]["dice"] for r in srs if r["classes"][c]["support_px"] > 0]
                seed_cls[c].append(np.mean(vals) if vals else np.nan)
        out[key] = {
            "n_runs": len(rs),
            "n_seeds": len(by_seed),
            "folds": sorted({r["fold"] for r in rs}),
            "mean_dice": float(np.mean(seed_dice)),
            "std_dice": float(np.std(seed_dice)),
            "mean_iou": float(np.mean(seed_iou)),
            "std_iou": float(np.std(seed_iou)),
            "class_dice": {c: float(np.nanmean(v)) for c, v in seed_cls.items()},
            "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
            "steps": rs[0].get("steps"),
        }
        biases = [r for r in rs if "bias" in r and r["method"].startswith("dfa")]
        if biases:
            out[key]["bias"] = np.mean([r["bias"] for r in biases], axis=0).round(3).tolist()
            out[key]["bias_init"] = np.mean([r["bias_init"] for r in biases], axis=0).round(3).tolist()
    return out


def accuracy_report(path: Path) -> tuple[str, dict]:
    agg = aggregate(_load(path))
    lines = []
    for ds in sorted({k[0] for k in agg}):
        for regime in sorted({k[1] for k in agg if k[0] == ds}):
            rows = {k[2]: v for k, v in agg.items() if k[0] == ds and k[1] == regime}
            classes = list(next(iter(rows.values()))["class_dice"])
            lines.append(f"\n### {ds}, {regime} annotations\n")
            lines.append("| method | mean Dice | mean IoU | " + " | ".join(f"Dice {c}" for c in classes)
                         + " | runs | train s |")
            lines.append("|---|---|---|" + "---|" * len(classes) + "---|---|")
            for m, v in sorted(rows.items(), key=lambda kv: -kv[1]["mean_dice"]):
                cells = " | ".join(f"{v['class_dice'][c]:.3f}" for c in classes)
                lines.append(
                    f"| {m} | {v['mean_dice']:.3f} ± {v['std_dice']:.3f} | {v['mean_iou']:.3f} ± {v['std_iou']:.3f}"
                    f" | {cells} | {v['n_runs']} | {v['train_seconds']:.0f} |"
                )
    summary = {f"{k[0]}/{k[1]}/{k[2]}": v for k, v in sorted(agg.items())}
    return "\n".join(lines) + "\n", summary
