"""Scale-out on dask.distributed: chunks run on the cluster's workers.

Each worker loads the model once (from a model folder, cached per worker process), reads
its chunk's window from the input (a file/zarr path, or a dask array, reopened on the
worker), predicts and writes the chunk into the shared output store with its marker.
Chunks are independent, so the result is identical to a local run. The client only
tracks progress and finalises the store (pyramid + rename).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Generator
from pathlib import Path

from napari_dfa.errors import DFAError

__all__ = ["run_on_cluster"]

_MODELS: dict = {}  # per worker process: (folder, fingerprint) -> (model, predictor)


class _Source:
    """Picklable handle to the input that dask.distributed does not try to compute."""

    def __init__(self, image, level: int) -> None:
        from napari_dfa.io.images import ImagePyramid

        if isinstance(image, ImagePyramid):
            image = image.path
        self.path = str(image) if isinstance(image, (str, Path)) else None
        self.array = None if self.path else image
        self.level = level

    def open(self):
        if self.path is not None:
            from napari_dfa.io.images import open_image

            return open_image(self.path).reader(self.level)
        arr = self.array
        return arr[self.level] if isinstance(arr, (list, tuple)) else arr


def _worker_predictor(model_dir: str, fingerprint: str, cfg):
    key = (model_dir, fingerprint)
    if key not in _MODELS:
        from napari_dfa.checkpoint import load_model
        from napari_dfa.device import resolve_device
        from napari_dfa.infer.predictor import Predictor

        device = resolve_device(cfg.device)
        model = load_model(model_dir, device=str(device))
        _MODELS[key] = Predictor(model, device, cfg)
    return _MODELS[key]


def _process(source: _Source, chunk, model_dir: str, fingerprint: str, cfg, writer, tissue, scale: float) -> bool:
    """Worker task: one chunk. Returns False when skipped as background."""
    from napari_dfa.infer.engine import _read_window
    from napari_dfa.infer.reader import WindowReader

    win = _read_window(WindowReader(source.open()), chunk, scale)
    if tissue is not None:
        kept = tissue.crop(chunk, win, cfg.halo)
        if kept is None:
            writer.mark_done(chunk.index)
            return False
        chunk, win = kept
    ((labels, probs),) = _worker_predictor(model_dir, fingerprint, cfg)([chunk], [win])
    writer.write(chunk, labels, probs)
    return True


def _model_folder(model, fingerprint: str) -> str:
    """A folder the workers can load ``model`` from: its own folder when unchanged since
    loading (use shared storage for multi-machine clusters), else a temporary copy."""
    from napari_dfa.checkpoint import load_model, save_model
    from napari_dfa.infer.engine import model_fingerprint

    folder = getattr(model, "folder", None)
    if folder is not None:
        try:
            if model_fingerprint(load_model(folder)) == fingerprint:
                return str(folder)
        except DFAError:
            pass
    return str(save_model(model, Path(tempfile.mkdtemp(prefix="napari-dfa-model-")) / "model"))


def run_on_cluster(client, image, level, model, store, chunks, cfg, tissue, meta, pixel_size) -> Generator:
    from distributed import as_completed

    from napari_dfa.infer.engine import SegmentResult, TileProgress, _scale_for, model_fingerprint

    source = _Source(image, level)
    if source.path is None and not hasattr(source.array, "dask") and not isinstance(source.array, (list, tuple)):
        raise DFAError("distributed segmentation needs a file/zarr path or a dask array as input, not a numpy array")
    arr = source.open()
    scale = _scale_for(arr, None)
    fingerprint = model_fingerprint(model)
    model_dir = _model_folder(model, fingerprint)
    todo = [c for c in chunks if not store.is_done(c.index)]
    total, resumed = len(chunks), store.resumed
    writer = store.writer()
    t0 = time.perf_counter()
    futures = [
        client.submit(_process, source, c, model_dir, fingerprint, cfg, writer, tissue, scale, pure=False) for c in todo
    ]
    by_key = {f.key: c for f, c in zip(futures, todo)}
    done, skipped, px = resumed, 0, 0
    try:
        for fut in as_completed(futures):
            ran = fut.result()
            c = by_key[fut.key]
            store._done.add(tuple(c.index))
            done += 1
            skipped += 0 if ran else 1
            px += c.pixels
            el = time.perf_counter() - t0
            new = done - resumed
            yield TileProgress(
                done,
                total,
                skipped,
                resumed,
                px / el / 1e6 if el else 0.0,
                el,
                el / new * (total - done) if new else 0.0,
                f"cluster ({client.scheduler.address})",
            )
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
    path = store.finalize(meta, pixel_size, cfg.pyramid)
    el = time.perf_counter() - t0
    return SegmentResult(
        path, tuple(arr.shape[:2]), total, skipped, resumed, el, px / el / 1e6 if el else 0.0, "cluster"
    )
