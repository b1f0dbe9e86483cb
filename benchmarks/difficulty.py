""" "Difficulty != rarity": does the learned DFA bias rank classes by difficulty or by rarity?

The synthetic generator sets each class's frequency and difficulty independently
(stroma frequent/easy, tumor frequent/medium, necrosis frequent/hard, lymphocytes
rare/easy, mucin rare/hard). Per seed: a plain model (bias ``none``) gives each class's
error ``1 - Dice`` on held-out images; DFA models give the learned bias ``b_c``. We report
``b_c`` next to its prior and the Spearman correlation of ``b`` (and of its drift
``b - b0``) with the per-class error versus with ``-log pi``.

    python benchmarks/difficulty.py --seeds 0 1 2 --steps 200 --json benchmarks/results/difficulty.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from _out import emit  # benchmarks/ is sys.path[0] when run as a script
from scipy.stats import spearmanr

VARIANTS = {
    "dfa_query_neglog": ("query", "neg_log_freq"),
    "dfa_query_zero": ("query", "zero"),
    "dfa_key_neglog": ("key", "neg_log_freq"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--train-images", type=int, default=6)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--regime", choices=["scribbles", "dense"], default="scribbles")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--json")
    args = ap.parse_args()

    import torch

    from napari_dfa.data.scribbles import make_scribbles
    from napari_dfa.data.synthetic import CLASS_NAMES, CLASSES, generate_dataset
    from napari_dfa.metrics import dataset_scores
    from napari_dfa.predict import predict_image
    from napari_dfa.train import TrainConfig, fine_tune, run_to_end

    names = list(CLASS_NAMES)
    runs = []
    for seed in args.seeds:
        train = generate_dataset(args.train_images, (args.size, args.size), seed=100 + seed)
        test = generate_dataset(4, (args.size, args.size), seed=900 + seed)
        labs = [s.labels for s in train]
        if args.regime == "scribbles":
            labs = [make_scribbles(s.labels, 0.02, seed=seed * 100 + i) for i, s in enumerate(train)]

        def fit(placement, init, seed=seed, train=train, labs=labs, test=test):
            torch.manual_seed(seed)
            cfg = TrainConfig(
                steps=args.steps, seed=seed, crop_size=args.crop, bias_placement=placement, bias_init=init
            )
            t0 = time.time()
            res = run_to_end(fine_tune([s.image for s in train], labs, names, config=cfg))
            preds = [predict_image(res.model, s.image) for s in test]
            scores = dataset_scores(preds, [s.labels for s in test], len(names), names)
            return res.model, scores, time.time() - t0

        _, plain_scores, secs = fit("none", "zero")
        error = [1.0 - d for d in plain_scores.dice]
        rec = {"seed": seed, "error_plain": error, "dice_plain": plain_scores.dice, "variants": {}}
        print(f"seed {seed}: plain mean Dice {plain_scores.mean_dice:.3f} ({secs:.0f}s)", file=sys.stderr, flush=True)
        for name in args.variants:
            placement, init = VARIANTS[name]
            model, scores, secs = fit(placement, init)
            fb = model.focal_bias
            b = fb.bias.detach().tolist()
            b0 = fb.bias_init.tolist()
            prior = fb.prior.tolist()
            neglog = [-math.log(p) for p in prior]
            drift = [x - y for x, y in zip(b, b0)]
            rec["variants"][name] = {
                "bias": b,
                "bias_init": b0,
                "prior": prior,
                "dice": scores.dice,
                "mean_dice": scores.mean_dice,
                "spearman_bias_error": spearmanr(b, error)[0],
                "spearman_bias_neglogprior": spearmanr(b, neglog)[0],
                "spearman_drift_error": spearmanr(drift, error)[0],
                "spearman_drift_neglogprior": spearmanr(drift, neglog)[0],
            }
            print(
                f"  {name}: Dice {scores.mean_dice:.3f}, rho(b, error) "
                f"{rec['variants'][name]['spearman_bias_error']:+.2f}, rho(b, -log pi) "
                f"{rec['variants'][name]['spearman_bias_neglogprior']:+.2f} ({secs:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
        runs.append(rec)
    summary = {
        "classes": [{"name": c.name, "frequency": c.frequency, "difficulty": c.difficulty} for c in CLASSES],
        "steps": args.steps,
        "regime": args.regime,
        "runs": runs,
        "mean": {},
    }
    for name in args.variants:
        vs = [r["variants"][name] for r in runs]
        summary["mean"][name] = {
            k: float(np.nanmean([v[k] for v in vs]))
            for k in (
                "spearman_bias_error",
                "spearman_bias_neglogprior",
                "spearman_drift_error",
                "spearman_drift_neglogprior",
                "mean_dice",
            )
        }
        summary["mean"][name]["bias"] = np.mean([v["bias"] for v in vs], axis=0).round(3).tolist()
        summary["mean"][name]["bias_init"] = np.mean([v["bias_init"] for v in vs], axis=0).round(3).tolist()
    summary["mean"]["error_plain"] = np.mean([r["error_plain"] for r in runs], axis=0).round(3).tolist()
    emit(summary, args.json)


if __name__ == "__main__":
    main()
