"""Train the shipped default model (reproducible; ~20 min on a 2-core CPU).

The default model is a DFA segmenter trained from scratch on images of the synthetic
H&E generator (dense ground truth, 5 tissue classes). It is the starting point that the
demo and the plugin fine-tune on a user's scribbles: its backbone has learnt H&E-like
nuclei/stroma textures, and its class queries are re-used for classes of the same name.

    python sample_data/make_default_model.py [--steps 1500] [--out sample_data/default_model]

The shipped model was trained with ``--placement query``. Fine-tuning uses ``key`` by default
(the accuracy benchmark's best); a model pretrained with ``key`` (same seed and budget) was
a worse starting point on the real benchmark data (docs/method.md, "Ablations"), so the
shipped model stayed the ``query`` one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from napari_dfa.checkpoint import save_model
from napari_dfa.data.synthetic import CLASS_COLORS, CLASS_NAMES, generate_tissue
from napari_dfa.metrics import dataset_scores
from napari_dfa.predict import predict_image
from napari_dfa.train import TrainConfig, fine_tune, run_to_end

HERE = Path(__file__).resolve().parent
SEED = 7


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--out", default=str(HERE / "default_model"))
    ap.add_argument("--placement", default="query", choices=["query", "key", "none"], help="DFA bias placement")
    ap.add_argument("--backbone", default="compact", help="'compact' or 'timm:NAME'")
    ap.add_argument(
        "--encoder-weights",
        help="initial encoder weights (safetensors from sample_data/encoder_weights.py); the encoder stays frozen",
    )
    args = ap.parse_args()
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    # vary how hard the hard classes are, so the model sees a range of appearances
    train = [
        generate_tissue((512, 512), seed=1000 + i, difficulty=float(rng.uniform(0.3, 1.0))) for i in range(args.images)
    ]
    val = [generate_tissue((512, 512), seed=5000 + i) for i in range(4)]
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=8,
        crop_size=256,
        lr=1e-3,
        seed=SEED,
        device="auto",
        bias_placement=args.placement,
        model_overrides={"backbone": args.backbone},
        backbone_weights=args.encoder_weights,
    )

    def show(ev):
        if ev.step % 50 == 0 or ev.step == ev.total_steps:
            print(f"step {ev.step}/{ev.total_steps} loss {ev.loss:.3f} {ev.elapsed:.0f}s", file=sys.stderr, flush=True)

    result = run_to_end(
        fine_tune(
            [s.image for s in train],
            [s.labels for s in train],
            list(CLASS_NAMES),
            None,
            cfg,
            class_colors=list(CLASS_COLORS),
        ),
        show,
    )
    model = result.model
    scores = dataset_scores([predict_image(model, s.image) for s in val], [s.labels for s in val], 5, list(CLASS_NAMES))
    print(scores.table())
    summary = dict(result.summary)
    summary["started_from"] = "scratch"
    summary["script"] = "sample_data/make_default_model.py"
    summary["validation"] = scores.to_dict()
    save_model(model, args.out, training=summary)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
