"""The work behind the widgets, run in napari thread workers (Qt- and napari-free).

Every long job is a generator: it yields progress events (one per training step or
tile batch) so that a worker can stop it at the next ``yield`` and the GUI can show
progress; its return value is the result. The widgets only wire these to buttons and
layers, and tests can drive them without a viewer.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_dfa.data.regions import Region, read_region
from napari_dfa.memory import release_memory

__all__ = [
    "ModelLoaded",
    "PreviewEvent",
    "PreviewSettings",
    "StatusEvent",
    "attention_job",
    "difficulty_job",
    "load_model_job",
    "predict_region",
    "save_model_job",
    "segment_job",
    "train_job",
    "warm_up",
]


@dataclass(frozen=True)
class StatusEvent:
    """A stage of a job started (e.g. reading the image regions)."""

    message: str


@dataclass(frozen=True)
class ModelLoaded:
    """A job had no model and loaded one (the GUI makes it the current model)."""

    model: Any
    source: str


@dataclass(frozen=True)
class PreviewEvent:
    """Prediction of the current model on a region while training (classes ``1..K``)."""

    step: int
    region: Region
    labels: np.ndarray


class PreviewSettings:
    """Live-preview settings shared with a running training job.

    The GUI thread sets :attr:`region` (the visible part of the image, level-0 px) as
    the user pans; the training job reads it between steps.
    """

    def __init__(self, every: int = 10) -> None:
        self.every = int(every)
        self.region: Region | None = None


def warm_up() -> None:
    """Import what the first training step or tile would import lazily (torch's optimizer
    pulls in ``torch._dynamo``: ~1.5 s of module execution holding the GIL; zarr, the
    engine). Run in a background thread when a widget opens, so that this does not stall
    the viewer while training or segmenting."""
    import torch
    import zarr  # noqa: F401 - the segmentation store

    from napari_dfa import trainers  # noqa: F401 - the training modules
    from napari_dfa.infer import engine  # noqa: F401
    from napari_dfa.model import adapt  # noqa: F401

    param = torch.nn.Parameter(torch.zeros(1))
    torch.optim.AdamW([param], lr=0.0).step()


def _set_threads(threads: int | None) -> None:
    """torch CPU threads for this (worker) thread: the setting is per thread."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def load_model_job(folder: str | Path | None = None) -> tuple[Any, str]:
    """``(model, source)``: the shipped default model (``folder=None``) or a model folder."""
    if folder is None:
        from napari_dfa.sample import load_default_model

        model, source = load_default_model("cpu"), "shipped default model"
    else:
        from napari_dfa.checkpoint import load_model

        model, source = load_model(folder, device="cpu"), f"model folder {folder}"
    model.source = source  # what a fine-tune records as "started_from"
    return model, source


def new_model_job(backbone: str, weights: str | Path | None = None) -> tuple[Any, str]:
    """``(model, source)``: an untrained model on ``backbone`` (classes come from the
    annotations when it is fine-tuned)."""
    from napari_dfa.model.encoders import new_model

    model = new_model(["class_1", "class_2"], backbone, weights)
    source = f"new model, {backbone} encoder" + (f" with weights {weights}" if weights else " (random init)")
    model.source = source
    return model, source


def save_model_job(model: Any, folder: str | Path) -> Path:
    from napari_dfa.checkpoint import save_model

    return save_model(model, folder, training=getattr(model, "training_summary", None) or {})


def predict_region(model: Any, image: Any, region: Region) -> np.ndarray:
    """Class index ``1..K`` per pixel of ``image[region]`` (level 0). A model in training
    mode is switched to eval for the prediction and back (so batch statistics do not move)."""
    from napari_dfa.predict import predict_image

    rgb = read_region(image, region)
    was_training = model.training
    model.eval()
    try:
        return predict_image(model, rgb)
    finally:
        model.train(was_training)


def train_job(
    image: Any,
    regions: Sequence[Region],
    label_crops: Sequence[np.ndarray],
    class_names: Sequence[str],
    class_colors: Sequence[str],
    loss: str,
    init: Any,
    config: Any,
    preview: PreviewSettings | None = None,
    threads: int | None = None,
    bias_placement: str | None = None,
    bias_init: str | None = None,
) -> Generator[Any, None, Any]:
    """Fine-tune ``init`` on ``image`` cropped to ``regions`` with ``label_crops``.

    ``init=None`` starts from the shipped default model. ``bias_placement`` /
    ``bias_init`` change the model's DFA bias settings only where they differ from
    ``init``'s (so continuing with the same settings keeps the learned bias).

    Yields :class:`StatusEvent` s, then :class:`~napari_dfa.train.TrainProgress` per step
    and, every ``preview.every`` steps, a :class:`PreviewEvent` of the region the user
    is looking at. Returns the :class:`~napari_dfa.train.TrainResult`; the fine-tuned
    model carries the training summary. ``init`` is never modified.
    """
    from dataclasses import replace

    from napari_dfa.trainers import start_training

    _set_threads(threads)
    if init is None:
        yield StatusEvent("loading the shipped default model")
        init, source = load_model_job(None)
        yield ModelLoaded(init, source)
    changes = {}
    if bias_placement and bias_placement != init.config.bias_placement:
        changes["bias_placement"] = bias_placement
    if bias_init and bias_init != init.config.bias_init:
        changes["bias_init"] = bias_init
    config = replace(config, **changes)
    yield StatusEvent(f"reading {len(regions)} annotated region(s) of the image")
    images = [read_region(image, r) for r in regions]
    gen = start_training(
        images,
        list(label_crops),
        list(class_names),
        loss=loss,
        init=init,
        config=config,
        class_colors=list(class_colors),
    )
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            yield event
            model = getattr(event, "model", None)
            region = preview.region if preview is not None else None
            if region is not None and model is not None and preview.every and event.step % preview.every == 0:
                yield PreviewEvent(event.step, region, predict_region(model, image, region))
    finally:
        gen.close()
        del gen
        release_memory(generations=1)  # a full collection would freeze the viewer
    summary = dict(result.summary)
    summary["regions"] = [[r.y0, r.x0, r.y1, r.x1] for r in regions]
    summary["loss"] = loss
    result.model.training_summary = summary
    result.summary = summary
    return result


def segment_job(
    image: Any,
    model: Any,
    out: str | Path | None,
    config: Any,
    level: int = 0,
    threads: int | None = None,
) -> Generator[Any, None, Any]:
    """Tiled segmentation of ``image`` (an array or a list of pyramid levels) at ``level``.

    Runs on a copy of ``model`` (the shared model is never moved or modified);
    ``model=None`` loads the shipped default model (yielding :class:`ModelLoaded`). With
    ``out=None`` the result goes to a new temporary folder, removed again when the job
    is cancelled or fails. Yields :class:`~napari_dfa.infer.engine.TileProgress`,
    returns :class:`~napari_dfa.infer.engine.SegmentResult`.
    """
    import tempfile

    from napari_dfa.infer.engine import segment
    from napari_dfa.model.adapt import copy_model

    _set_threads(threads)
    if model is None:
        yield StatusEvent("loading the shipped default model")
        model, source = load_model_job(None)
        yield ModelLoaded(model, source)
    tmp = None
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="napari-dfa-"))
        out = tmp / "segmentation.zarr"
    done = False
    try:
        result = yield from segment(image, copy_model(model), out, config, level)
        done = True
        return result
    finally:
        if not done and tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        release_memory(generations=1)  # a full collection would freeze the viewer


def attention_job(
    model: Any,
    image: Any,
    region: Region,
    layer: int = -1,
    head: int | None = None,
    threads: int | None = None,
):
    """Per-class cross-attention maps of ``image[region]`` (level 0), placed in level-0 px."""
    from napari_dfa.inspect import attention_maps

    _set_threads(threads)
    rgb = read_region(image, region)
    return attention_maps(model, rgb, layer=layer, head=head, origin=region.origin, pixel_scale=1.0)


def difficulty_job(
    model: Any, image: Any, region: Region, kind: str = "entropy", threads: int | None = None
) -> np.ndarray:
    """Per-pixel difficulty map (``entropy`` / ``margin`` / ``bias``) of ``image[region]``."""
    from napari_dfa.inspect import difficulty_map

    _set_threads(threads)
    return difficulty_map(model, read_region(image, region), kind=kind)
