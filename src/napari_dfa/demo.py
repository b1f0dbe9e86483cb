"""The main job on the shipped defaults: fine-tune the default model on the sample's
scribbles, segment the sample, score it against the ground truth, and show the learned
DFA bias next to its frequency prior."""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["run_demo"]


def run_demo(out_dir: str | Path = "napari-dfa-demo", max_seconds: float = 60.0, device: str = "auto", seed: int = 0):
    """Run the demo and write its outputs; returns a summary dict."""
    import torch

    from napari_dfa.checkpoint import save_model
    from napari_dfa.cli import ProgressLine, train_event_text
    from napari_dfa.io.files import write_image, write_text
    from napari_dfa.metrics import dataset_scores
    from napari_dfa.plots import save_bias_chart, save_overlay
    from napari_dfa.predict import predict_image
    from napari_dfa.sample import load_default_model, load_sample
    from napari_dfa.train import TrainConfig, fine_tune, run_to_end

    out = Path(out_dir)
    say = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    sample = load_sample()
    model = load_default_model()
    names, colors = sample.class_names, sample.class_colors
    k = len(names)
    h, w = sample.image.shape[:2]
    annotated = int((sample.scribbles > 0).sum())
    say(f"napari-dfa demo: sample {w}x{h} px, {k} classes, {annotated} scribbled px ({annotated / (h * w):.1%})")
    before = dataset_scores([predict_image(model, sample.image)], [sample.ground_truth], k, names)
    say(f"default model before fine-tuning: mean Dice {before.mean_dice:.3f}")

    torch.manual_seed(seed)
    cfg = TrainConfig(steps=400, max_seconds=max_seconds, device=device, seed=seed, batch_size=8, crop_size=192)
    progress = ProgressLine()
    say(f"fine-tuning on the scribbles for up to {max_seconds:.0f}s ...")
    result = run_to_end(
        fine_tune([sample.image], [sample.scribbles], names, init=model, config=cfg, class_colors=colors),
        lambda ev: progress(train_event_text(ev), ev.fraction),
    )
    progress(f"fine-tuned: {result.steps} steps in {result.elapsed:.0f}s", 1.0, final=True)
    tuned = result.model
    pred = predict_image(tuned, sample.image)
    scores = dataset_scores([pred], [sample.ground_truth], k, names)

    print("\nPer-class Dice / IoU of the fine-tuned model against the sample's ground truth:")
    print(scores.table())
    fb = tuned.focal_bias
    prior = fb.prior.tolist()
    b0 = fb.bias_init.tolist()
    b = fb.bias.detach().cpu().tolist()
    print(
        "\nDFA attention bias per class: initialised from your scribbles at -log(prior) (centred),"
        " learned end to end; 'now' is after fine-tuning."
        "\nA bias above its initial value means the model gives the class more attention than its"
        " rarity alone implied (a hint that it is harder); short fine-tunes move it little"
        " (see docs/benchmarks.md)."
    )
    print(f"{'class':<14}{'prior pi':>9}{'init b':>9}{'now b':>9}{'drift':>9}")
    for n, p, i0, bb in zip(names, prior, b0, b):
        print(f"{n:<14}{p:9.3f}{i0:9.2f}{bb:9.2f}{bb - i0:+9.2f}")

    out.mkdir(parents=True, exist_ok=True)
    labels_path = write_image(out / "labels.png", pred)
    overlay_path = save_overlay(
        out / "overlay.png",
        sample.image,
        {"scribbles": sample.scribbles, "prediction": pred, "ground truth": sample.ground_truth},
        names,
        colors,
    )
    bias_path = save_bias_chart(out / "bias.png", names, b0, b)
    model_path = save_model(tuned, out / "model", training=result.summary)
    summary = {
        "mean_dice_before": before.mean_dice,
        "scores": scores.to_dict(),
        "bias": {n: {"prior": p, "init": i0, "learned": bb} for n, p, i0, bb in zip(names, prior, b0, b)},
        "steps": result.steps,
        "train_seconds": round(result.elapsed, 1),
        "device": result.summary["device"],
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(
        f"\nwrote {labels_path}, {overlay_path}, {bias_path}, {model_path}/ and {out / 'summary.json'}\n"
        f"open them in napari:  napari {labels_path}   (or Plugins > napari-dfa)"
    )
    return summary
