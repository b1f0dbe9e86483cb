"""Fine-tuning on sparse annotations, as a generator of progress events.

>>> gen = fine_tune([image], [scribbles], class_names=["tumor", "stroma"], config=TrainConfig(steps=100))
>>> for event in gen:          # TrainProgress events; closing the generator cancels
...     print(event.step, event.loss)
>>> # the generator's return value (StopIteration.value, or run_to_end) is a TrainResult

The starting model is never modified: training runs on a copy, so cancelling (closing
the generator) within a step leaves the caller's model exactly as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_dfa.data.augment import AugmentConfig, augment_batch
from napari_dfa.data.images import check_image, check_labels, to_rgb_uint8
from napari_dfa.data.prefetch import Prefetcher
from napari_dfa.data.samples import AnnotatedImage, CropSampler, class_pixel_counts
from napari_dfa.device import describe_device, resolve_device
from napari_dfa.errors import InputError
from napari_dfa.model import DFASegmenter, ModelConfig, frequency_prior
from napari_dfa.model.adapt import adapt_model, copy_model
from napari_dfa.model.losses import LossConfig, sample_points, segmentation_loss

__all__ = ["TrainConfig", "TrainProgress", "TrainResult", "fine_tune", "run_to_end"]


@dataclass
class TrainConfig:
    """Options of :func:`fine_tune`.

    Budgets: training stops at ``steps`` or after ``max_seconds`` (whichever comes
    first); the learning-rate schedule (linear warm-up, cosine decay) follows whichever
    budget is closer to its end, so a time budget still ends with a decayed rate.
    """

    steps: int = 300
    max_seconds: float | None = None
    batch_size: int = 8
    crop_size: int = 256
    num_points: int = 2048  # annotated points per crop in the loss (Mask2Former-style)
    lr: float | None = None  # default: 1e-4 to continue a model on its own classes, else 1e-3
    weight_decay: float = 1e-4
    bias_lr_mult: float = 10.0
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    class_balanced: bool | None = None  # centre class drawn uniformly; None: automatic (True here)
    device: str = "auto"
    seed: int = 0
    prefetch: int = 2  # batches read ahead in a background thread; 0: read in the training loop
    amp: bool = True
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # model settings: for a new model, or overrides of the starting model's (None: keep the
    # starting model's). The default placement (ModelConfig's, key) is the accuracy
    # benchmark's best when fine-tuning the shipped model (docs/method.md, "Ablations").
    bias_placement: str | None = ModelConfig.bias_placement
    bias_init: str | None = None
    bias_learnable: bool | None = None
    reset_bias: bool | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"backbone": "timm:tf_efficientnet_lite0"}
    # a new model's initial encoder weights (safetensors file, or "timm" to download)
    backbone_weights: str | None = None
    # keep the encoder's weights fixed; None: frozen iff it holds pretrained weights
    freeze_encoder: bool | None = None
    # periodic training checkpoints (napari_dfa.train_state) and resuming from one
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    resume_from: str | None = None


@dataclass(frozen=True)
class TrainProgress:
    """One optimisation step done."""

    step: int
    total_steps: int
    loss: float
    bias: tuple[float, ...]
    bias_init: tuple[float, ...]
    lr: float
    elapsed: float
    eta: float
    device: str
    # the model being trained (in training mode): lets a caller preview predictions
    # between steps, in the thread that iterates the generator; never stored or copied
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def fraction(self) -> float:
        return self.step / max(self.total_steps, 1)


@dataclass
class TrainResult:
    model: DFASegmenter
    steps: int
    elapsed: float
    final_loss: float
    stopped: str  # "steps" or "time"
    losses: list[float]
    summary: dict[str, Any]


def run_to_end(gen: Generator, on_event: Callable[[Any], None] | None = None):
    """Drive an event generator to its end and return its return value (then give the
    memory its work freed back to the OS, see :mod:`napari_dfa.memory`)."""
    from napari_dfa.memory import release_memory

    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            value = stop.value
            break
        if on_event is not None:
            on_event(event)
    del gen
    release_memory()
    return value


def _prepare_data(images: Sequence, labels: Sequence, num_classes: int) -> list[AnnotatedImage]:
    if len(images) != len(labels):
        raise InputError(f"got {len(images)} images but {len(labels)} label images; give one per image")
    if not images:
        raise InputError("no training images given")
    data = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        name = f"image {i + 1}" if len(images) > 1 else "image"
        check_image(img, name)
        lab = np.asarray(lab)
        check_labels(lab, img.shape, num_classes, name=f"labels of {name}")
        if isinstance(img, np.ndarray):
            img = to_rgb_uint8(img, name)
        data.append(AnnotatedImage(img, lab.astype(np.uint8)))
    return data


def _image_stats(data: Sequence[AnnotatedImage]) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the annotated regions (subsampled), RGB in [0, 1]."""
    px = []
    for d in data:
        ys, xs = np.nonzero(d.labels)
        if len(ys) > 20000:
            sel = np.linspace(0, len(ys) - 1, 20000).astype(int)
            ys, xs = ys[sel], xs[sel]
        px.append(np.asarray(d.image)[ys, xs, :3].astype(np.float32) / 255.0)
    allpx = np.concatenate(px)
    return allpx.mean(0).round(4).tolist(), np.maximum(allpx.std(0), 0.02).round(4).tolist()


def build_start_model(
    init: DFASegmenter | None,
    class_names: Sequence[str],
    prior: list[float],
    cfg: TrainConfig,
    data: Sequence[AnnotatedImage],
    class_colors: Sequence[str] | None = None,
    label_values: Sequence[int] | None = None,
) -> DFASegmenter:
    """The model training starts from (a new object; ``init`` is left untouched)."""
    bias = {
        k: v
        for k, v in (
            ("bias_placement", cfg.bias_placement),
            ("bias_init", cfg.bias_init),
            ("bias_learnable", cfg.bias_learnable),
        )
        if v is not None
    }
    if init is None:
        from napari_dfa.model.encoders import new_model

        overrides = dict(cfg.model_overrides)
        backbone = overrides.pop("backbone", "compact")
        if cfg.backbone_weights is None:  # a pretrained encoder brings its own normalisation
            mean, std = _image_stats(data)
            overrides = {"mean": mean, "std": std, **overrides}
        return new_model(
            class_names,
            backbone,
            cfg.backbone_weights,
            class_colors=list(class_colors) if class_colors else [],
            prior=prior,
            label_values=list(label_values) if label_values else [],
            **bias,
            **overrides,
        )
    if cfg.backbone_weights is not None:
        raise InputError("backbone weights initialise a new model; train from scratch (no starting model) to use them")
    if (
        list(class_names) == list(init.config.class_names)
        and not bias
        and not cfg.model_overrides
        and not (cfg.reset_bias)
    ):
        model = copy_model(init)
        if label_values is not None:
            model.config.label_values = list(label_values)
        return model
    return adapt_model(
        init,
        class_names,
        prior,
        class_colors=class_colors,
        label_values=label_values,
        reset_bias=cfg.reset_bias,
        **bias,
        **cfg.model_overrides,
    )


def _param_groups(model: DFASegmenter, cfg: TrainConfig) -> list[dict[str, Any]]:
    decay, no_decay, bias_params = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("focal_bias.bias"):
            bias_params.append(p)
        elif p.ndim <= 1 or "query_" in name or "embed" in name or "key_pos" in name:
            no_decay.append(p)  # norms, biases, embeddings: no weight decay (as Mask2Former)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
    ]
    if bias_params:  # the DFA bias: never weight-decayed
        groups.append({"params": bias_params, "weight_decay": 0.0, "lr_mult": cfg.bias_lr_mult})
    return groups


def _lr_factor(progress: float, warmup: float) -> float:
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 0.02)
    t = (progress - warmup) / max(1.0 - warmup, 1e-8)
    return 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def fine_tune(
    images: Sequence,
    labels: Sequence,
    class_names: Sequence[str] | None = None,
    init: DFASegmenter | None = None,
    config: TrainConfig | None = None,
    class_colors: Sequence[str] | None = None,
    label_values: Sequence[int] | None = None,
) -> Generator[TrainProgress, None, TrainResult]:
    """Train (or fine-tune ``init``) on images with sparse annotations.

    Args:
        images: RGB images ``(H, W, 3)``, numpy or dask.
        labels: label images ``(H, W)``: ``0`` unlabeled, ``1..K`` classes.
        class_names: names of classes ``1..K`` (default: the starting model's, or
            ``class_1..class_K``).
        init: starting model (not modified); ``None`` trains a new model.
        config: :class:`TrainConfig`.
        class_colors: optional display colours.
        label_values: label value written for each class in predictions.

    Yields:
        :class:`TrainProgress` after every step.

    Returns:
        :class:`TrainResult` with the trained model (eval mode).
    """
    cfg = config or TrainConfig()
    class_names, data, counts = _annotated_data(images, labels, class_names, init)
    k = len(class_names)
    prior = frequency_prior(counts)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    class_balanced = True if cfg.class_balanced is None else cfg.class_balanced
    sampler = CropSampler(data, k, cfg.crop_size, class_balanced, cfg.augment, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    continuing = init is not None and list(class_names) == list(init.config.class_names)
    base_lr = cfg.lr if cfg.lr is not None else (1e-4 if continuing else 1e-3)
    step, losses, offset = 0, [], 0.0
    if cfg.resume_from:
        model, opt_state, state = _resume(cfg.resume_from, class_names, gen)
        model = model.to(device)
        step, losses, offset, base_lr = state["step"], list(state["losses"]), state["elapsed"], state["base_lr"]
    else:
        model = build_start_model(init, class_names, prior, cfg, data, class_colors, label_values).to(device)
    frozen = bool(model.config.encoder_weights) if cfg.freeze_encoder is None else cfg.freeze_encoder
    model.freeze_encoder(frozen)
    groups = _param_groups(model, cfg)
    opt = torch.optim.AdamW(groups, lr=base_lr, weight_decay=cfg.weight_decay)
    if cfg.resume_from:
        opt.load_state_dict(opt_state)
    use_amp, amp_dtype, scaler = _amp(cfg, device)
    dev_name = describe_device(device)
    bias_init = tuple(model.focal_bias.bias_init.tolist())
    model.train()
    t0 = time.perf_counter() - offset
    stopped = "steps"
    first_step = step
    # batch i is a function of (seed, i): a resumed run reads on from its step
    batches = Prefetcher(sampler, cfg.batch_size, start=step, depth=cfg.prefetch)
    try:
        while step < cfg.steps:
            elapsed = time.perf_counter() - t0
            progress = step / cfg.steps
            if cfg.max_seconds:
                if elapsed >= cfg.max_seconds:
                    stopped = "time"
                    break
                progress = max(progress, elapsed / cfg.max_seconds)
            factor = _lr_factor(progress, cfg.warmup_frac)
            for g in opt.param_groups:
                g["lr"] = base_lr * factor * g["lr_mult"]
            x_np, y_np = batches.next()
            images = torch.from_numpy(x_np).to(device, non_blocking=True)
            labs = torch.from_numpy(y_np).to(device, non_blocking=True)
            x, y = augment_batch(images, labs, cfg.crop_size, cfg.augment, gen)
            losses.append(_step(model, opt, scaler, x, y, gen, cfg, use_amp, amp_dtype))
            step += 1
            elapsed = time.perf_counter() - t0
            if cfg.checkpoint_every and cfg.checkpoint_dir and step % cfg.checkpoint_every == 0:
                from napari_dfa.train_state import save_train_state

                state = {"step": step, "elapsed": elapsed, "losses": losses, "base_lr": base_lr}
                save_train_state(cfg.checkpoint_dir, model, opt, {**state, "class_names": list(class_names)}, gen)
            yield _event(
                cfg, model, step, losses[-1], bias_init, base_lr * factor, elapsed, offset, first_step, dev_name
            )
    finally:
        batches.close()
    model.eval()
    elapsed = time.perf_counter() - t0
    run = {"class_balanced": class_balanced, "encoder_frozen": frozen, "wait": batches.wait_seconds}
    summary = _summary(cfg, init, class_names, counts, losses, step, elapsed, offset, stopped, dev_name, run)
    return TrainResult(model, step, elapsed, losses[-1] if losses else float("nan"), stopped, losses, summary)


def _summary(cfg, init, class_names, counts, losses, step, elapsed, offset, stopped, dev_name, run) -> dict[str, Any]:
    """The training summary saved with the model."""
    wait = run["wait"]
    return {
        "steps": step,
        "elapsed_s": round(elapsed, 2),
        "stopped": stopped,
        "final_loss": losses[-1] if losses else None,
        "mean_loss_last_10": float(np.mean(losses[-10:])) if losses else None,
        "annotated_pixels": {n: int(c) for n, c in zip(class_names, counts)},
        "device": dev_name,
        "seed": cfg.seed,
        "class_balanced": run["class_balanced"],
        "encoder_frozen": run["encoder_frozen"],
        # time the loop waited for batches, and its share of this run's time (a resumed run's own)
        "data_wait_s": round(wait, 3),
        "data_wait_fraction": round(wait / max(elapsed - offset, 1e-9), 4),
        "started_from": getattr(init, "source", None) if init is not None else "scratch",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "train_config": _jsonable(asdict(cfg)),
    }


def _annotated_data(
    images: Sequence, labels: Sequence, class_names: Sequence[str] | None, init: DFASegmenter | None
) -> tuple[list[str], list[AnnotatedImage], np.ndarray]:
    """Class names (given, the starting model's, or ``class_1..K``), checked training data
    and annotated pixels per class; :class:`InputError` unless two classes are annotated."""
    if class_names is None:
        if init is not None:
            class_names = list(init.config.class_names)
        else:
            top = max((int(np.asarray(lab).max()) for lab in labels), default=0)
            class_names = [f"class_{i}" for i in range(1, top + 1)]
    k = len(class_names)
    if k == 0:
        raise InputError("no classes: the annotations are empty; paint at least one stroke per class")
    data = _prepare_data(images, labels, k)
    counts = class_pixel_counts([d.labels for d in data], k)
    if counts.sum() == 0:
        raise InputError("there are no annotations (every label pixel is 0 = unlabeled); paint a few strokes per class")
    annotated = [n for n, c in zip(class_names, counts) if c > 0]
    if len(annotated) < 2:
        raise InputError(
            f"only {annotated[0] if annotated else 'no class'} has annotations; paint a few strokes of at least "
            "one other class too (a model learns to tell classes apart from examples of each)"
        )
    return list(class_names), data, counts


def _event(cfg, model, step, loss, bias_init, lr, elapsed, offset, first_step, dev_name) -> TrainProgress:
    """The progress event after ``step`` (remaining time from this run's own rate)."""
    remaining = (cfg.steps - step) * (elapsed - offset) / max(step - first_step, 1)
    if cfg.max_seconds:
        remaining = min(remaining, max(cfg.max_seconds - elapsed, 0.0))
    return TrainProgress(
        step=step,
        total_steps=cfg.steps,
        loss=loss,
        bias=tuple(model.focal_bias.bias.detach().cpu().tolist()),
        bias_init=bias_init,
        lr=lr,
        elapsed=elapsed,
        eta=remaining,
        device=dev_name,
        model=model,
    )


def _amp(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """Mixed precision on CUDA: bf16 where supported (no loss scaling), else fp16 with a scaler."""
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    return use_amp, amp_dtype, torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)


def _resume(folder: str, class_names: Sequence[str], gen: torch.Generator):
    """``(model, optimizer state, loop state)`` of a training checkpoint; sets ``gen``."""
    from napari_dfa.train_state import load_train_state

    model, opt_state, state, rng_state = load_train_state(folder)
    if list(model.config.class_names) != list(class_names):
        raise InputError(
            f"the training checkpoint {folder} has classes {model.config.class_names}, the "
            f"annotations {list(class_names)}; resume with the same classes"
        )
    gen.set_state(rng_state)
    return model, opt_state, state


def _step(
    model: DFASegmenter,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    cfg: TrainConfig,
    use_amp: bool,
    amp_dtype: torch.dtype,
) -> float:
    """One optimisation step on an augmented batch; returns its loss."""
    points, point_labels = sample_points(y, cfg.num_points, gen)
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=use_amp):
        out = model(x, points=points)
    loss = segmentation_loss([lg.float() for lg in out.layer_logits], point_labels, cfg.loss)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(opt)
    scaler.update()
    return float(loss.detach())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)
