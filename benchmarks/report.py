"""Tables from the accuracy benchmark's JSONL (mean ± std over seeds of the fold-mean)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

FIRST_DEFAULT_MODEL = "2026-11-26T15:49:22"  # the shipped model every comparison started from
# other starting models, by training date: a label suffix for their runs
OTHER_MODELS = {"2026-11-26T22:11:30": " (key-pretrained model, not shipped)"}


def _load(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in records:
        start = r.get("start_model", FIRST_DEFAULT_MODEL)
        if r.get("init") not in (None, "default", "none"):  # a model folder: name it
            r["method"] += f" (from {Path(r['init']).name})"
        elif r.get("init") == "default" and start != FIRST_DEFAULT_MODEL:
            r["method"] += OTHER_MODELS.get(start, f" (from the model of {start})")
    return records


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
        for _seed, srs in sorted(by_seed.items()):
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
            lines.append(
                "| method | mean Dice | mean IoU | " + " | ".join(f"Dice {c}" for c in classes) + " | runs | train s |"
            )
            lines.append("|---|---|---|" + "---|" * len(classes) + "---|---|")
            for m, v in sorted(rows.items(), key=lambda kv: -kv[1]["mean_dice"]):
                cells = " | ".join(f"{v['class_dice'][c]:.3f}" for c in classes)
                lines.append(
                    f"| {m} | {v['mean_dice']:.3f} ± {v['std_dice']:.3f} | {v['mean_iou']:.3f} ± {v['std_iou']:.3f}"
                    f" | {cells} | {v['n_runs']} | {v['train_seconds']:.0f} |"
                )
    summary = {f"{k[0]}/{k[1]}/{k[2]}": v for k, v in sorted(agg.items())}
    checks, check_lines = target_checks(agg, _load(path))
    summary["targets"] = checks
    return "\n".join(lines + check_lines) + "\n", summary


def _paired(records: list[dict], ds: str, regime: str, a: str, b: str) -> dict:
    """Mean Dice difference a - b over runs with the same (fold, seed), and a's win count."""
    runs = {
        (r["method"], r["fold"], r["seed"]): r["mean_dice"]
        for r in records
        if r["dataset"] == ds and r["regime"] == regime
    }
    diffs = [runs[(a, f, s)] - runs[(b, f, s)] for (m, f, s) in runs if m == a and (b, f, s) in runs]
    if not diffs:
        return {}
    return {"mean_diff": round(float(np.mean(diffs)), 4), "wins": int(sum(d > 0 for d in diffs)), "pairs": len(diffs)}


def default_pair(rows: dict) -> tuple[str, str]:
    """Labels of the package's default DFA configuration and the plain baseline."""
    from napari_dfa.model import ModelConfig

    default = f"dfa:{ModelConfig.bias_placement}:{ModelConfig.bias_init}"
    return (default if default in rows else "dfa"), "plain"


def target_checks(agg: dict, records: list[dict]) -> tuple[dict, list[str]]:
    """The issue's accuracy targets, per dataset and regime (met or not, with the numbers)."""
    out: dict = {}
    lines = [
        "\n### Targets\n",
        "| dataset / regime | best DFA (mean Dice) | best baseline | DFA beats every baseline "
        "| DFA - RF (points) | rare-class gain over plain (points) | default DFA vs plain, paired |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds, regime in sorted({(k[0], k[1]) for k in agg}):
        rows = {k[2]: v for k, v in agg.items() if k[0] == ds and k[1] == regime}
        dfa = {m: v for m, v in rows.items() if m.startswith("dfa")}
        base = {m: v for m, v in rows.items() if not m.startswith("dfa") and m != "rf"}
        if not dfa or not base:
            continue
        best_dfa = max(dfa, key=lambda m: dfa[m]["mean_dice"])
        best_base = max(base, key=lambda m: base[m]["mean_dice"])
        rec = {
            "best_dfa": best_dfa,
            "best_dfa_dice": round(dfa[best_dfa]["mean_dice"], 4),
            "best_baseline": best_base,
            "best_baseline_dice": round(base[best_base]["mean_dice"], 4),
            "dfa_beats_every_baseline": dfa[best_dfa]["mean_dice"] > base[best_base]["mean_dice"],
            "dfa_minus_rf_points": (
                round(100 * (dfa[best_dfa]["mean_dice"] - rows["rf"]["mean_dice"]), 2) if "rf" in rows else None
            ),
            "default_dfa_vs_plain_paired": _paired(records, ds, regime, *default_pair(rows)),
        }
        rare = "normal" if ds == "wsss4luad" else None
        if rare and "plain" in rows:
            rec["rare_class_gain_points"] = round(
                100 * (dfa[best_dfa]["class_dice"][rare] - rows["plain"]["class_dice"][rare]), 2
            )
        out[f"{ds}/{regime}"] = rec
        pr = rec["default_dfa_vs_plain_paired"]

        def pts(v):
            return "n/a" if v is None else f"{v:+.1f}"

        lines.append(
            f"| {ds} / {regime} | {best_dfa} ({rec['best_dfa_dice']:.3f}) | {best_base} "
            f"({rec['best_baseline_dice']:.3f}) | {'yes' if rec['dfa_beats_every_baseline'] else 'no'} "
            f"| {pts(rec['dfa_minus_rf_points'])} | {pts(rec.get('rare_class_gain_points'))} | "
            + (f"{pr['mean_diff'] * 100:+.1f} points, wins {pr['wins']}/{pr['pairs']} |" if pr else "n/a |")
        )
    return out, lines
