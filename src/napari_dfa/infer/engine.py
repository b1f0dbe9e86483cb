"""Streaming tiled inference: dask/zarr image in -> zarr label pyramid out.

>>> gen = segment(image, model, "out.zarr", EngineConfig(tile=2048))
>>> for ev in gen:        # TileProgress: tiles done/total, MP/s, ETA; gen.close() cancels
...     print(ev.done, ev.total, ev.mpx_per_s)

Reads run ahead on a thread pool (pinned host memory and non-blocking copies on CUDA),
the model runs on batches of same-shaped windows (on a CPU in two concurrent streams),
and results are written behind the compute by another pool, so peak memory depends on
the tile size, not the slide size.
See :mod:`napari_dfa.infer.tiling` for the geometry, :mod:`napari_dfa.infer.predictor`
for the model side and :mod:`napari_dfa.infer.store` for crash safety and resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_dfa.errors import InputError
from napari_dfa.infer.predictor import Predictor, set_torch_threads, thread_shares, torch_threads
from napari_dfa.infer.reader import WindowReader
from napari_dfa.infer.store import SegmentationStore
from napari_dfa.infer.tiling import band_order, chunk_grid
from napari_dfa.infer.tissue import TissueDetector
from napari_dfa.io.compute import to_numpy
from napari_dfa.memory import reuse_freed_memory

__all__ = [
    "EngineConfig",
    "SegmentResult",
    "TileProgress",
    "auto_batch",
    "auto_streams",
    "auto_tile",
    "model_fingerprint",
    "segment",
]


@dataclass
class EngineConfig:
    """Options of :func:`segment`.

    Attributes:
        tile: output chunk side (px); the unit of work, writing and resuming. 0 = auto:
            1024 on a CPU, 2048 on a GPU (see :func:`auto_tile`).
        halo: context (px) read around each chunk; >= the model's effective receptive
            field makes chunk seams invisible (multiple of 32).
        batch_size: windows per forward; 0 = auto: 1 on the CPU, 2 on a GPU (see :func:`auto_batch`).
        streams: batches computed at once, each by its own thread; 0 = auto (see
            :func:`auto_streams`): 2 on a CPU with N >= 2 torch threads, sharing the N
            threads (this model's many small operations leave cores idle inside one
            forward pass: 2 streams of 1 thread ran 1.29x as fast as 1 stream of 2 on a
            2-core CPU); 1 on a GPU (2, each on its own CUDA stream so that one
            batch's host work overlaps the other's compute, measured no faster on an H100).
        device: ``auto`` / ``cpu`` / ``cuda`` / ``mps``.
        amp: bf16 autocast on CUDA.
        tissue_detection: skip chunks without tissue and compute partly covered chunks
            only over the tissue's bounding box (label 0 = background elsewhere).
        min_tissue_fraction: a chunk with less tissue than this is skipped.
        probabilities: also write per-class probabilities: ``None``, ``"uint8"`` or ``"float16"``.
        max_window: split windows larger than this into overlapping sub-tiles blended with
            ``blend`` weights and ``overlap`` (0 = never split).
        read_workers: threads reading and decoding windows (on a 16-core GPU machine
            4 threads read a 512-px-chunked zarr at ~190 MP/s, 12 at ~170).
        read_ahead: windows read ahead of the compute, besides the batches computing
            and the one queued (at least two batches per stream on a GPU). On a CPU 3
            keep the streams fed (a window reads in ~15 ms and computes in ~0.8 s) and
            peaked ~25 MB lower than 6 (2 runs of 8192^2).
        write_workers: threads compressing and writing finished chunks.
        input_cache_mb: decode each input chunk of a zarr/TIFF input once for all the
            windows that overlap it instead of once per window, keeping at most this
            many MB of decoded chunks (0 = off). Chunks are computed in vertical bands
            at least :data:`BAND_PX` wide (:func:`~napari_dfa.infer.tiling.band_order`), so
            the cache holds a few rows of a band's input chunks (~17 MB for 512-px RGB chunks)
            whatever the slide's size. On a 2-core CPU window reads took 0.4x the CPU
            time (0.8 vs 1.9 s on 8192^2).
        overwrite: replace an existing result / interrupted run at the output path.
        pyramid: build the label (and probability) pyramid at the end.
    """

    tile: int = 0
    halo: int = 32
    batch_size: int = 0
    streams: int = 0
    device: str = "auto"
    amp: bool = True
    tissue_detection: bool = True
    min_tissue_fraction: float = 0.01
    probabilities: str | None = None
    max_window: int = 0
    blend: str = "cosine"
    overlap: float = 0.25
    read_workers: int = 3
    read_ahead: int = 3
    write_workers: int = 2
    input_cache_mb: int = 256
    overwrite: bool = False
    pyramid: bool = True


BAND_PX = 4096  # chunks are computed in vertical bands at least this wide (see band_order)


@dataclass(frozen=True)
class TileProgress:
    done: int
    total: int
    skipped: int
    resumed: int
    mpx_per_s: float
    elapsed: float
    eta: float
    device: str

    @property
    def fraction(self) -> float:
        return self.done / max(self.total, 1)

    @property
    def estimating(self) -> bool:
        """No chunk computed in this run yet: no rate or time left to show."""
        return self.done < self.total and self.eta <= 0


@dataclass
class SegmentResult:
    path: Path
    shape: tuple[int, int]
    tiles: int
    skipped: int
    resumed: int
    elapsed: float
    mpx_per_s: float
    device: str


def auto_tile(device) -> int:
    """The default chunk side for ``device``. On a CPU 1024: two streams each hold a
    window (~0.9 GB of RAM in all; 2048-px chunks compute 1.06x the output's pixels
    instead of 1.13x but need ~2 GB). A GPU runs batches of 2048-px chunks."""
    return 2048 if device.type == "cuda" else 1024


def auto_batch(device) -> int:
    """Windows per forward: 1 on a CPU; 2 on a GPU: two 2112^2 windows are 8.9 MP, as
    many pixels per forward as the raw limit's 32 tiles of 512^2, and half the host
    memory of four (queued windows, pinned batches: a 16384^2 run in the emulated GPU
    configuration peaked 357-392 instead of 487-509 MB above the process, at the same
    host rate; on an H100 the engine ran batches of 2 and 4 at 50.8 and 51.2 MP/s)."""
    return 2 if device.type == "cuda" else 1


def auto_streams(device, threads: int) -> int:
    """Concurrent compute streams: 2 on a CPU with >= 2 threads, else 1."""
    return 2 if device.type == "cpu" and threads >= 2 else 1


def model_fingerprint(model) -> str:
    """SHA-256 of the model's config and weights (identifies a run for resuming)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _as_levels(image):
    """-> (levels, window reader per level, pixel size, source description)."""
    from napari_dfa.io.images import ImagePyramid, open_image

    if isinstance(image, (str, Path)):
        image = open_image(image)
    if isinstance(image, ImagePyramid):
        readers = [image.reader(i) for i in range(len(image.levels))]
        return image.levels, readers, image.pixel_size, image.path
    levels = list(image) if isinstance(image, (list, tuple)) else [image]
    return levels, levels, None, "array"


def _scale_for(arr, levels=None) -> float:
    """Factor mapping the input's values to [0, 255], decided once for the whole image
    (per-window decisions would make tiles inconsistent). Floats are taken as [0, 1]
    unless the coarsest level (or a numpy image) shows values above 1.5, as
    :func:`napari_dfa.data.images.to_rgb_uint8` does for training."""
    dt = np.dtype(arr.dtype)
    if dt == np.uint8:
        return 1.0
    if dt == np.uint16:
        return 1.0 / 257.0
    if np.issubdtype(dt, np.floating):
        probe = arr if isinstance(arr, np.ndarray) else (levels[-1] if levels else arr[::64, ::64])
        hi = float(np.nanmax(to_numpy(probe[..., :3]))) if probe.size else 0.0
        return 1.0 if hi > 1.5 else 255.0
    raise InputError(f"image dtype {dt} is not supported; use 8-bit RGB (or uint16 / float in [0, 1])")


def _read_window(reader: WindowReader, chunk, scale: float) -> np.ndarray:
    try:
        win = np.asarray(reader.read(chunk.wy0, chunk.wy1, chunk.wx0, chunk.wx1))
    except Exception as exc:  # noqa: BLE001 - a decoder/store failure is a bad input
        raise InputError(
            f"cannot read the image region y {chunk.wy0}:{chunk.wy1}, x {chunk.wx0}:{chunk.wx1} ({exc}); "
            "the file may be corrupt or truncated: re-export or re-copy it"
        ) from exc
    if win.dtype != np.uint8:
        if not np.isfinite(win).all():
            raise InputError(
                f"the image has NaN/inf pixels in the region y {chunk.wy0}:{chunk.wy1}, "
                f"x {chunk.wx0}:{chunk.wx1}; fix or mask them first"
            )
        win = np.clip(win.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(win)


def segment(
    image,
    model,
    out: str | Path | None = None,
    config: EngineConfig | None = None,
    level: int = 0,
    client=None,
) -> Generator[TileProgress, None, SegmentResult]:
    """Segment ``image`` (path, :class:`~napari_dfa.io.images.ImagePyramid`, dask or
    numpy ``(H, W, 3)``) at pyramid ``level`` into the zarr store ``out``.

    ``out=None`` writes to a new temporary folder. With a dask.distributed ``client``
    the chunks run on the cluster's workers (see :mod:`napari_dfa.infer.distributed`).
    Closing the generator cancels within one batch and leaves an unfinished
    ``OUT.partial`` that a rerun resumes.
    """
    from napari_dfa.data.images import check_image
    from napari_dfa.device import describe_device, resolve_device

    cfg = config or EngineConfig()
    levels, readers, pixel_size, source = _as_levels(image)
    if not 0 <= level < len(levels):
        raise InputError(f"pyramid level {level} does not exist; this image has levels 0..{len(levels) - 1}")
    arr = check_image(levels[level], "image")
    source_arr = readers[level]  # the zarr array behind the level where there is one
    scale = _scale_for(arr, levels[level + 1 :])
    h, w = int(arr.shape[0]), int(arr.shape[1])
    if pixel_size and level:
        pixel_size = pixel_size * (levels[0].shape[0] / h)
    device = resolve_device(cfg.device)
    if not cfg.tile:
        cfg = dataclasses.replace(cfg, tile=auto_tile(device))
    chunks = chunk_grid((h, w), cfg.tile, cfg.halo)
    tissue = TissueDetector.from_levels(levels, min_fraction=cfg.min_tissue_fraction) if cfg.tissue_detection else None
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="napari-dfa-")) / "segmentation.zarr"
    run = {
        "input": str(source),
        "level": level,
        "shape": [h, w],
        "dtype": str(arr.dtype),
        "model": model_fingerprint(model),
        "tile": cfg.tile,
        "halo": cfg.halo,
        "probabilities": cfg.probabilities,
        "tissue_threshold": None if tissue is None else round(tissue.threshold, 6),
        "min_tissue_fraction": cfg.min_tissue_fraction if tissue else None,
        "max_window": cfg.max_window,
        "blend": [cfg.blend, cfg.overlap] if cfg.max_window else None,
        "bf16": bool(cfg.amp and device.type == "cuda"),
    }
    store = SegmentationStore(
        out, (h, w), cfg.tile, model.num_classes, run, cfg.probabilities, cfg.overwrite, cfg.pyramid
    )
    meta = {
        "class_names": model.config.class_names,
        "class_colors": model.config.class_colors,
        "label_values": model.config.label_values,
        "pixel_size_um": pixel_size,
        "engine": asdict(cfg),
    }
    if client is not None:
        from napari_dfa.infer.distributed import run_on_cluster

        return (yield from run_on_cluster(client, image, level, model, store, chunks, cfg, tissue, meta, pixel_size))

    # chunks across a band: >= BAND_PX and >= 4 input chunks (bands share input chunks at their edges)
    reader = WindowReader(source_arr)
    band = max(1, max(BAND_PX, 4 * reader.chunk_width) // cfg.tile)
    todo = band_order([c for c in chunks if not store.is_done(c.index)], band)
    # clearly glass on a low-resolution level: skipped without reading its window
    glass = [c for c in todo if tissue.is_glass(c)] if tissue is not None else []
    if glass:
        skip = {c.index for c in glass}
        todo = [c for c in todo if c.index not in skip]
    total, resumed = len(chunks), store.resumed
    bs = cfg.batch_size or auto_batch(device)
    predictor = Predictor(model, device, cfg)
    threads = torch_threads()
    streams = max(1, cfg.streams or auto_streams(device, threads))
    dev_name = describe_device(device, streams)
    if cfg.input_cache_mb > 0:
        # a chunk shared by two rows of a band is used again within about a band's
        # windows (plus the reads running out of order); across bands it is decoded again
        keep = 2 * band + cfg.read_workers
        reader.share_chunks([(c.wy0, c.wy1, c.wx0, c.wx1) for c in todo], cfg.input_cache_mb << 20, keep)
    readers = ThreadPoolExecutor(max(1, cfg.read_workers), thread_name_prefix="dfa-read")
    ahead = max(cfg.read_ahead, bs * streams * (2 if device.type == "cuda" else 1))
    writers = ThreadPoolExecutor(max(1, cfg.write_workers), thread_name_prefix="dfa-write")
    computes = ThreadPoolExecutor(
        streams,
        thread_name_prefix="dfa-compute",
        initializer=set_torch_threads,
        initargs=(thread_shares(threads, streams),),
    )

    def read(c):
        win = _read_window(reader, c, scale)
        if tissue is None:
            return c, win, c.pixels
        kept = tissue.crop(c, win, cfg.halo)
        return (c, None, c.pixels) if kept is None else (*kept, c.pixels)

    reads: deque = deque()
    writes: deque = deque()
    running: deque = deque()  # (batch, future of its outputs), oldest first
    queue = iter(todo)
    done, skipped, px = resumed, 0, 0
    t0 = time.perf_counter()

    def refill() -> None:
        while len(reads) < ahead:
            c = next(queue, None)
            if c is None:
                return
            reads.append(readers.submit(read, c))

    glass_px = sum(c.pixels for c in glass)

    def progress() -> TileProgress:
        """Rate and ETA from the chunks read in this run (glass skipped up front costs
        no time: counting it would show a huge rate and too short an ETA)."""
        el = time.perf_counter() - t0
        rate = (px - glass_px) / el / 1e6 if el > 0 else 0.0
        new_done = done - resumed - len(glass)
        eta = el / new_done * (total - done) if new_done > 0 else 0.0
        return TileProgress(done, total, skipped, resumed, rate, el, eta, dev_name)

    def finish_oldest() -> None:
        """Wait for the oldest batch in flight and hand its outputs to the writers."""
        nonlocal done, px
        batch, fut = running.popleft()
        for (c, n_px), (labels, probs) in zip(batch, fut.result()):
            writes.append(writers.submit(store.write, c, labels, probs))
            px += n_px
        while len(writes) > 2 * bs * streams + cfg.write_workers:
            writes.popleft().result()
        done += len(batch)

    def submit(batch) -> bool:
        """Queue ``batch`` for the streams; True if the oldest batch had to finish first.
        One batch more than the streams waits in the queue, so a stream that finishes
        before the oldest batch takes the next one at once instead of idling."""
        waited = len(running) > streams
        if waited:
            finish_oldest()
        chunks = [(c, n_px) for c, _, n_px in batch]  # the windows only in the predictor's list
        running.append((chunks, computes.submit(predictor, [c for c, _ in chunks], [w for _, w, _ in batch])))
        batch.clear()
        return waited

    completed = False
    with reuse_freed_memory():  # big activations: no page faults per window
        try:
            for c in glass:
                store.mark_done(c.index)  # nothing to write: the fill value is 0 (no tissue)
            done, skipped, px = done + len(glass), len(glass), glass_px
            if glass:
                yield progress()
            refill()
            batch: list = []
            while reads:
                c, win, n_px = reads.popleft().result()
                refill()
                if win is None:
                    store.mark_done(c.index)  # nothing to write: the fill value is 0 (no tissue)
                    done += 1
                    skipped += 1
                    px += n_px
                    yield progress()
                    continue
                if batch and (win.shape != batch[0][1].shape or len(batch) >= bs):
                    if submit(batch):
                        yield progress()
                    batch = []
                batch.append((c, win, n_px))
            win = None  # the last window read: in the batch only
            if batch:
                submit(batch)
            while running:
                finish_oldest()
                yield progress()
            while writes:
                writes.popleft().result()
            completed = True
        finally:
            for f in reads:
                f.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
            for _, f in running:  # cancel: the queued batch is dropped first, then
                f.cancel()  # the batches already computing finish (within one batch)
            for _, f in running:
                if not f.cancelled():
                    f.exception()
            computes.shutdown(wait=True)
            for f in writes:  # let started writes finish so their markers are consistent
                f.exception()
            writers.shutdown(wait=True)
    if not completed:  # pragma: no cover - only reachable through exceptions above
        raise RuntimeError("segmentation did not complete")
    path = store.finalize(meta, pixel_size, cfg.pyramid)
    el = time.perf_counter() - t0
    return SegmentResult(path, (h, w), total, skipped, resumed, el, px / el / 1e6 if el else 0.0, dev_name)
