"""The model side of tiled inference: batches of windows in, chunk outputs out.

:class:`Predictor` runs the model on a batch of same-shaped windows and reads out the
labels (and probabilities) of each chunk's core, in strips of :data:`READOUT_ROWS` rows.
The engine runs it in several concurrent streams (threads). On a CPU :func:`thread_shares`
and :func:`set_torch_threads` give each stream's thread its share of torch's threads; on a
GPU each thread queues its work on its own CUDA stream, so one batch's host-side work
(stacking windows into pinned memory, copying labels back) overlaps another's compute, and
a chunk's labels are read out on the device and copied back once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from napari_dfa.infer.tiling import blend_weights, subtiles

if TYPE_CHECKING:
    from napari_dfa.infer.engine import EngineConfig

__all__ = ["READOUT_ROWS", "Predictor", "set_torch_threads", "thread_shares", "torch_threads"]

READOUT_ROWS = 256  # rows of a chunk's core upsampled and read out at a time


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def thread_shares(threads: int, streams: int):
    """A queue of per-stream torch thread counts that add up to ``threads`` (3 threads in
    2 streams: 2 and 1; never below 1)."""
    import queue

    q: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(streams):
        q.put(max(1, threads // streams + (i < threads % streams)))
    return q


def set_torch_threads(shares) -> None:
    """Compute-thread initializer: take this thread's torch intra-op thread count from
    ``shares`` (OpenMP's count is per thread; the caller's stays as it is)."""
    import torch

    torch.set_num_threads(shares.get())


class Predictor:
    """Runs the model on batches of windows and turns logits into chunk outputs."""

    def __init__(self, model, device, cfg: EngineConfig) -> None:
        import torch

        from napari_dfa.model.argmax import class_argmax
        from napari_dfa.model.segmenter import upsample_region

        self.torch = torch
        self.class_argmax = class_argmax
        self.upsample_region = upsample_region
        self.model = model.to(device).eval()
        self.device = device
        self.cfg = cfg
        self.amp = cfg.amp and device.type == "cuda"
        self.lut = np.zeros(256, np.uint8)  # class index 0..K-1 -> label value
        self.lut[: model.num_classes] = model.config.label_values
        self.gpu = device.type == "cuda"
        self.lut_dev = torch.from_numpy(self.lut).to(device)
        self._local = threading.local()  # per compute thread: its CUDA stream

    def logits(self, x):
        """Stride-4 logits of the batch and a function giving input-resolution logits of
        one window's region (the model's own upsampling, or the blended sub-tiles)."""
        cfg = self.cfg
        h, w = x.shape[-2:]
        if not cfg.max_window or max(h, w) <= cfg.max_window:
            coarse = self.model.predict_coarse(x).float()
            return lambda i, region: self.upsample_region(coarse[i : i + 1], region)[0]
        torch = self.torch
        acc = torch.zeros(x.shape[0], self.model.num_classes, h, w, device=x.device)
        wsum = torch.zeros(1, 1, h, w, device=x.device)
        for y0, y1, x0, x1 in subtiles((h, w), cfg.max_window, cfg.overlap):
            wt = torch.from_numpy(blend_weights((y1 - y0, x1 - x0), cfg.blend)).to(x.device)
            acc[..., y0:y1, x0:x1] += self.model.predict_logits(x[..., y0:y1, x0:x1]).float() * wt
            wsum[..., y0:y1, x0:x1] += wt
        full = acc / wsum
        return lambda i, region: full[i, :, region[0] : region[1], region[2] : region[3]]

    def __call__(self, chunks, windows: list):
        """Outputs of ``chunks`` from their ``windows``; the list is emptied once the
        windows are copied into the batch (the caller keeps no other reference, so a batch
        in flight holds its pixels once, not twice)."""
        if self.gpu:
            with self.torch.cuda.stream(self._stream()):
                return self._run(chunks, windows)
        return self._run(chunks, windows)

    def _stream(self):
        """This compute thread's CUDA stream (created on first use)."""
        if not hasattr(self._local, "stream"):
            self._local.stream = self.torch.cuda.Stream(self.device)
        return self._local.stream

    def _run(self, chunks, windows):
        torch = self.torch
        if self.gpu:  # stack straight into pinned memory: one host copy, async upload
            batch = torch.empty((len(windows), *windows[0].shape), dtype=torch.uint8, pin_memory=True)
            np.stack(windows, out=batch.numpy())
        else:
            batch = torch.from_numpy(np.stack(windows))
        windows.clear()
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        del batch  # back to torch's pinned pool once the copy is done (it tracks the stream)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            region_logits = self.logits(x)
            del x
            if self.device.type != "cpu":
                return self._readout_device(region_logits, chunks)
            return [self._readout(region_logits, i, c) for i, c in enumerate(chunks)]

    def _readout_device(self, region_logits, chunks) -> list:
        """Labels (and probabilities) of each chunk's core computed on the device and
        copied to pinned host memory without waiting; one synchronisation per batch."""
        torch = self.torch
        kind, pin = self.cfg.probabilities, self.gpu
        host = []
        for i, c in enumerate(chunks):
            cy, cx = c.core
            lg = region_logits(i, (cy.start, cy.stop, cx.start, cx.stop))
            labels = self.lut_dev[lg.argmax(0)]
            lab_h = torch.empty(labels.shape, dtype=torch.uint8, pin_memory=pin)
            lab_h.copy_(labels, non_blocking=pin)
            probs_h = None
            if kind:
                p = self._probabilities(lg)
                probs_h = torch.empty(p.shape, dtype=p.dtype, pin_memory=pin)
                probs_h.copy_(p, non_blocking=pin)
            host.append((lab_h, probs_h))
        if self.gpu:
            torch.cuda.current_stream(self.device).synchronize()
        return [(lab.numpy(), None if pr is None else pr.numpy()) for lab, pr in host]

    def _probabilities(self, logits):
        """Per-class probabilities of ``(K, h, w)`` logits as the output stores them."""
        p = logits.softmax(0)
        if self.cfg.probabilities == "uint8":
            return (p * 255.0).round().to(self.torch.uint8)
        return p.to(self.torch.float16)

    def _readout(self, region_logits, i: int, c) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (and probabilities) of chunk ``c``'s core, in strips of rows: only the
        core is upsampled (not the halo), and never all of it at once."""
        cy, cx = c.core
        h, w = cy.stop - cy.start, cx.stop - cx.start
        labels = np.empty((h, w), np.uint8)
        kind = self.cfg.probabilities
        probs = (
            None if not kind else np.empty((self.model.num_classes, h, w), np.uint8 if kind == "uint8" else np.float16)
        )
        for s in range(0, h, READOUT_ROWS):
            e = min(s + READOUT_ROWS, h)
            lg = region_logits(i, (cy.start + s, cy.start + e, cx.start, cx.stop))
            labels[s:e] = np.take(self.lut, self.class_argmax(lg).cpu().numpy())
            if kind:
                probs[:, s:e] = self._probabilities(lg).cpu().numpy()
        return labels, probs
