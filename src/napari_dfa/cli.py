"""``napari-dfa`` command line: train, evaluate, predict, demo.

User mistakes end with one line ``napari-dfa: error: ...`` and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from napari_dfa import __version__
from napari_dfa.errors import DFAError

__all__ = ["main"]


class ProgressLine:
    """Prints progress events: one rewritten line on a terminal, a line every ~10 %
    otherwise (logs stay short)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_bucket = -1
        self.last_time = 0.0

    def __call__(self, text: str, fraction: float, final: bool = False) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write(f"\r\x1b[K{text}{end}")
            self.stream.flush()
            return
        bucket = int(fraction * 10)
        now = time.monotonic()
        if final or bucket > self.last_bucket or now - self.last_time > 30:
            self.last_bucket = bucket
            self.last_time = now
            self.stream.write(text + "\n")
            self.stream.flush()


def train_event_text(ev) -> str:
    bias = " ".join(f"{b:+.2f}" for b in ev.bias)
    return (
        f"step {ev.step}/{ev.total_steps}  loss {ev.loss:.3f}  bias [{bias}]  "
        f"{ev.elapsed:.0f}s elapsed, ~{ev.eta:.0f}s left  ({ev.device})"
    )


def _classes_arg(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise DFAError(f"--classes must be unique, non-empty names separated by commas, got {text!r}")
    return names


def _load_init(init: str | None, device: str):
    if init is None or init.lower() == "none":
        return None
    model = _load_model_arg(init, "cpu")
    if init != "default":
        model.source = str(init)
    return model


MODEL_HELP = "a model folder (saved by train or the Model widget), or 'default': the shipped model (the default)"


def _load_model_arg(name: str, device: str):
    """``--model``: 'default' (the shipped model) or a model folder."""
    if name == "default":
        from napari_dfa.sample import load_default_model

        return load_default_model(device=device)
    from napari_dfa.checkpoint import load_model

    return load_model(name, device=device)


def _read_pairs(images: str, labels: str, ignore_index, num_classes: int | None):
    from napari_dfa.data.labels import encode_labels
    from napari_dfa.io.files import pair_by_stem, read_image, read_labels

    data = []
    for img_path, lab_path in pair_by_stem(images, labels):
        img = read_image(img_path)
        lab = encode_labels(read_labels(lab_path), ignore_index, num_classes)
        if lab.shape != img.shape[:2]:
            raise DFAError(
                f"{lab_path.name} has shape {lab.shape} but {img_path.name} is {img.shape[:2]}; "
                "each label image must match its image"
            )
        data.append((img_path, img, lab))
    return data


def cmd_train(args) -> int:
    from napari_dfa.checkpoint import save_model
    from napari_dfa.data.labels import label_values_for, parse_ignore_index
    from napari_dfa.train import TrainConfig, run_to_end
    from napari_dfa.trainers import start_training

    ignore = parse_ignore_index(args.ignore_index)
    classes = _classes_arg(args.classes)
    if (args.backbone or args.backbone_weights) and str(args.init).lower() != "none":
        raise DFAError(
            "--backbone and --backbone-weights build a new model; add --init none "
            f"(now fine-tuning {args.init!r}, whose encoder is fixed)"
        )
    init = _load_init(args.init, args.device)
    if classes is None and init is not None:
        classes = list(init.config.class_names)
    data = _read_pairs(args.images, args.labels, ignore, len(classes) if classes else None)
    if classes is None:
        top = max(int(lab.max()) for _, _, lab in data)
        classes = [f"class_{v}" for v in label_values_for(top, ignore)]
    # --bias: default TrainConfig's placement; 'keep': the starting model's (None)
    bias = {} if args.bias is None else {"bias_placement": None if args.bias == "keep" else args.bias}
    cfg = TrainConfig(
        steps=args.steps,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        lr=args.lr,
        device=args.device,
        seed=args.seed,
        bias_init=args.bias_init,
        bias_learnable=False if args.frozen_bias else None,
        class_balanced={"auto": None, "yes": True, "no": False}[args.class_balanced],
        freeze_encoder={"auto": None, "frozen": True, "trained": False}[args.encoder],
        backbone_weights=args.backbone_weights,
        model_overrides={"backbone": args.backbone} if args.backbone else {},
        **bias,
    )
    print(f"training on {len(data)} image(s), classes: {', '.join(classes)}", file=sys.stderr)
    progress = ProgressLine()
    gen = start_training(
        [img for _, img, _ in data],
        [lab for _, _, lab in data],
        classes,
        loss=args.loss,
        init=init,
        config=cfg,
        label_values=label_values_for(len(classes), ignore),
    )
    result = run_to_end(gen, lambda ev: progress(train_event_text(ev), ev.fraction))
    folder = save_model(result.model, args.out, training=result.summary)
    print(
        f"saved model to {folder} ({result.steps} steps in {result.elapsed:.0f}s, "
        f"stopped by {result.stopped}, final loss {result.final_loss:.3f})",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args) -> int:
    from napari_dfa.data.labels import parse_ignore_index
    from napari_dfa.device import resolve_device
    from napari_dfa.evaluate import evaluate_pairs

    ignore = parse_ignore_index(args.ignore_index)
    model = _load_model_arg(args.model, str(resolve_device(args.device)))
    scores = evaluate_pairs(model, args.images, args.labels, ignore)
    print(scores.table())
    if args.json:
        from napari_dfa.io.files import write_text

        write_text(args.json, json.dumps(scores.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_predict(args) -> int:
    from napari_dfa.infer.engine import EngineConfig, segment
    from napari_dfa.infer.export import export_labels
    from napari_dfa.io.images import open_image
    from napari_dfa.train import run_to_end

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".zarr", ".png", ".tif", ".tiff"):
        raise DFAError(f"--out {out}: use a .zarr store (any size), or .tif / .png")
    model = _load_model_arg(args.model, "cpu")
    pyramid = open_image(args.input)
    cfg = EngineConfig(
        tile=args.tile,
        halo=args.halo,
        batch_size=args.batch_size,
        streams=args.streams,
        device=args.device,
        tissue_detection=not args.no_tissue_detection,
        probabilities=args.probabilities,
        overwrite=args.overwrite,
    )
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError as exc:
            raise DFAError("--scheduler needs dask.distributed: pip install distributed") from exc
        client = Client(args.scheduler)
    store_path = out if suffix == ".zarr" else out.with_name(out.name + ".zarr")
    progress = ProgressLine()

    def show(ev) -> None:
        progress(
            f"tiles {ev.done}/{ev.total} ({ev.skipped} background, {ev.resumed} resumed)  "
            + ("estimating speed  " if ev.estimating else f"{ev.mpx_per_s:.2f} MP/s  ~{ev.eta:.0f}s left  ")
            + f"({ev.device})",
            ev.fraction,
        )

    try:
        result = run_to_end(segment(pyramid, model, store_path, cfg, level=args.level, client=client), show)
    finally:
        if client is not None:
            client.close()
    progress(f"segmented {result.shape[1]}x{result.shape[0]} px in {result.elapsed:.0f}s", 1.0, final=True)
    if suffix != ".zarr":
        export_labels(result.path, out)
        import shutil

        shutil.rmtree(result.path, ignore_errors=True)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from napari_dfa.demo import run_demo

    run_demo(out_dir=args.out, max_seconds=args.max_seconds, device=args.device, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-dfa",
        description="Dynamic Focal Attention segmentation for histopathology (the napari plugin's core).",
    )
    p.add_argument("--version", action="version", version=f"napari-dfa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or fine-tune a model on images + (sparse) label images")
    t.add_argument("--images", required=True, help="an image file or a folder of images")
    t.add_argument("--labels", required=True, help="label file or folder; pairs with images by file stem")
    t.add_argument("--out", required=True, help="model folder to write (model.safetensors + config.json)")
    t.add_argument("--classes", help="class names for label values 1..K (or 0..K-1), comma-separated")
    t.add_argument(
        "--ignore-index",
        default="0",
        help="'0': label 0 = unlabeled (default); '255': 255 = unlabeled, classes 0..K-1; "
        "'none': every value is a class",
    )
    t.add_argument(
        "--init",
        default="default",
        help="start from 'default' (the shipped model, pretrained on synthetic H&E; the default), "
        "a model folder, or 'none' (from scratch)",
    )
    t.add_argument(
        "--bias",
        choices=["query", "key", "none", "keep"],
        help="DFA bias placement (default: key, the accuracy benchmark's best; 'keep': the starting model's)",
    )
    t.add_argument(
        "--bias-init",
        choices=["neg_log_freq", "log_freq", "zero"],
        help="bias initialisation (default: the starting model's; neg_log_freq for new models)",
    )
    t.add_argument("--frozen-bias", action="store_true", help="keep the bias at its prior (not learned)")
    t.add_argument(
        "--loss",
        default="plain",
        choices=["plain", "inverse_freq", "median_freq", "effective_number", "focal", "logit_adjust", "cdb"],
        help="loss: plain CE + Dice (default, the DFA recipe) or a class-imbalance baseline",
    )
    t.add_argument(
        "--backbone",
        help="encoder of a new model (with --init none): 'compact' or 'timm:NAME' (any timm model, e.g. "
        "timm:tf_efficientnet_lite0)",
    )
    t.add_argument(
        "--backbone-weights",
        help="initial encoder weights of a new model: a local .safetensors file for that timm model (strict: "
        "every key must match), or 'timm' to download timm's pretrained weights (needs internet)",
    )
    t.add_argument(
        "--encoder",
        choices=["auto", "frozen", "trained"],
        default="auto",
        help="train the encoder or keep it fixed (auto: frozen when it holds pretrained weights)",
    )
    t.add_argument(
        "--class-balanced",
        choices=["auto", "yes", "no"],
        default="auto",
        help="draw crops around each class equally often (auto: yes, except for losses that re-weight classes)",
    )
    t.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    t.add_argument("--max-minutes", type=float, help="wall-time budget in minutes")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--crop-size", type=int, default=256)
    t.add_argument(
        "--lr", type=float, help="learning rate (default 1e-4 to continue a model on its own classes, else 1e-3)"
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="dataset-level Dice/IoU of a model on labelled images")
    e.add_argument("--model", default="default", help=MODEL_HELP)
    e.add_argument("--images", required=True)
    e.add_argument("--labels", required=True)
    e.add_argument("--ignore-index", default="0")
    e.add_argument("--json", help="write the scores as JSON here")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="segment an image")
    r.add_argument("--model", default="default", help=MODEL_HELP)
    r.add_argument("input", help="image: TIFF/OME-TIFF/SVS, zarr/OME-Zarr, PNG or JPEG")
    r.add_argument("--out", required=True, help="output: .zarr (label pyramid, any size), .tif or .png")
    r.add_argument("--level", type=int, default=0, help="pyramid level to segment (0 = full resolution)")
    r.add_argument(
        "--tile",
        type=int,
        default=0,
        help="output chunk side in px (multiple of 32); 0 = auto (1024 on a CPU, 2048 on a GPU)",
    )
    r.add_argument("--halo", type=int, default=32, help="context around each chunk in px (multiple of 32)")
    r.add_argument("--batch-size", type=int, default=0, help="windows per forward (0 = auto)")
    r.add_argument(
        "--streams",
        type=int,
        default=0,
        help="batches computed at once (0 = auto: 2 on a CPU with >= 2 threads, else 1)",
    )
    r.add_argument("--no-tissue-detection", action="store_true", help="segment background chunks too")
    r.add_argument("--probabilities", choices=["uint8", "float16"], help="also store per-class probabilities")
    r.add_argument("--overwrite", action="store_true", help="replace an existing result at --out")
    r.add_argument("--scheduler", help="dask.distributed scheduler address: run the chunks on that cluster")
    r.add_argument("--device", default="auto")
    r.set_defaults(func=cmd_predict)

    d = sub.add_parser("demo", help="fine-tune the shipped model on the sample's scribbles and segment it")
    d.add_argument("--out", default="napari-dfa-demo", help="output folder (default ./napari-dfa-demo)")
    d.add_argument("--max-seconds", type=float, default=60.0, help="fine-tuning budget (default 60)")
    d.add_argument("--device", default="auto")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DFAError as exc:
        message = " ".join(str(exc).split())  # always one line
        print(f"\nnapari-dfa: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nnapari-dfa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
