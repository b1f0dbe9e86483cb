"""The segmentation output store: crash-safe, resumable, never mistaken for complete.

Layout of ``OUT`` (a zarr v3 group, OME-Zarr style multiscales)::

    OUT/labels/0, 1, ...          uint8 label pyramid (model label values; 0 = no tissue)
    OUT/probabilities/0, 1, ...   optional (K, H, W) uint8 or float16 pyramid
    OUT/zarr.json                 attributes: "napari_dfa" run record, "complete": true

While running, everything is written to ``OUT.partial`` with one marker file per
finished chunk (``OUT.partial/_done/i.j``, created after the chunk's data is written).
Only when every chunk is done are the pyramids built, ``complete`` set and the folder
renamed to ``OUT``. A rerun with the same input, model and settings resumes from the
markers; anything else is refused with a reason (or replaced with ``overwrite``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from napari_dfa.errors import DFAError
from napari_dfa.io.codecs import fast_codecs

__all__ = ["FORMAT", "ChunkWriter", "SegmentationStore"]

FORMAT = "napari-dfa-segmentation"
CHUNK = 512  # preferred zarr chunk side of the outputs (napari reads these)


def chunk_side(tile: int) -> int:
    """The zarr chunk side: a divisor of ``tile`` (so concurrent tile writes never share a
    zarr chunk), at most :data:`CHUNK`, on the 32-px grid when possible."""
    if tile <= CHUNK:
        return tile
    for c in range(CHUNK, 31, -32):
        if tile % c == 0:
            return c
    return tile


INLINE_MIN = 256  # a chunk's block of an inline pyramid level is at least this wide


def inline_levels(shape: tuple[int, int], tile: int) -> int:
    """Pyramid levels written with each chunk (so the pyramid is not a long serial step
    at the end): as long as a chunk's block at that level is >= :data:`INLINE_MIN` px,
    its origin stays on the 32-px grid of restricted chunks, and the pyramid needs it."""
    from napari_dfa.io.pyramid import levels_below

    n = 0  # tile is a multiple of 32: halving it up to 5 times stays exact
    while n < 5 and tile >> (n + 1) >= INLINE_MIN:
        n += 1
    return min(n, levels_below(shape))


def _is_our_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, json.JSONDecodeError):
        return False
    return attrs.get("napari_dfa", {}).get("format") == FORMAT


class SegmentationStore:
    def __init__(
        self,
        path: str | Path,
        shape: tuple[int, int],
        tile: int,
        num_classes: int,
        run: dict[str, Any],
        probabilities: str | None = None,
        overwrite: bool = False,
        pyramid: bool = True,
    ) -> None:
        import zarr

        self.path = Path(path)
        if self.path.suffix != ".zarr":
            self.path = self.path.with_name(self.path.name + ".zarr")
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.shape = (int(shape[0]), int(shape[1]))
        self.tile = tile
        self.k = num_classes
        self.probabilities = probabilities
        self.inline = inline_levels(self.shape, tile) if pyramid else 0
        run = {**run, "inline_levels": self.inline}
        self.run = run
        self.resumed = 0
        if self.path.exists():
            if not _is_our_store(self.path):
                raise DFAError(
                    f"{self.path} already exists and is not a napari-dfa segmentation; choose another output path"
                )
            if not overwrite:
                raise DFAError(f"{self.path} already holds a finished segmentation; use --overwrite or another path")
        if self.partial.exists():
            same = _is_our_store(self.partial) and self._read_run(self.partial) == _jsonable(run)
            if not same and not overwrite:
                raise DFAError(
                    f"{self.partial} holds an interrupted run with a different input, model or settings; "
                    "rerun with the same ones to resume, or use --overwrite to start again"
                )
            if not same:
                shutil.rmtree(self.partial)
        try:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.partial.exists()
            if fresh:
                self._create()
            self.group = zarr.open_group(str(self.partial), mode="r+")
        except OSError as exc:
            raise DFAError(
                f"cannot write the output to {self.partial.parent}: {exc}; choose a writable folder"
            ) from exc
        self.done_dir = self.partial / "_done"
        self.done_dir.mkdir(exist_ok=True)
        self._done = {tuple(int(v) for v in p.name.split(".")) for p in self.done_dir.iterdir()}
        self.resumed = len(self._done)

    @staticmethod
    def _read_run(path: Path) -> dict:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        return attrs.get("napari_dfa", {}).get("run", {})

    def _create(self) -> None:
        import zarr

        root = zarr.open_group(str(self.partial), mode="w", zarr_format=3)
        root.attrs["napari_dfa"] = {"format": FORMAT, "version": 1, "complete": False, "run": _jsonable(self.run)}
        comp = zarr.codecs.ZstdCodec(level=3)
        for lv in range(self.inline + 1):
            shape = tuple(-(-n // 2**lv) for n in self.shape)
            c = chunk_side(self.tile >> lv)  # a divisor of the chunk's block: no shared zarr chunks
            root.create_array(f"labels/{lv}", shape=shape, chunks=(c, c), dtype="uint8", fill_value=0, compressors=comp)
            if self.probabilities:
                root.create_array(
                    f"probabilities/{lv}",
                    shape=(self.k, *shape),
                    chunks=(self.k, c, c),
                    dtype=self.probabilities,
                    fill_value=0,
                    compressors=comp,
                )

    def is_done(self, index: tuple[int, int]) -> bool:
        return tuple(index) in self._done

    def writer(self) -> ChunkWriter:
        """A small picklable object that writes chunks (for threads and cluster workers)."""
        return ChunkWriter(str(self.partial), bool(self.probabilities), self.inline)

    def write(self, chunk, labels: np.ndarray, probs: np.ndarray | None = None) -> None:
        """Write one finished chunk, then its marker (so a crash never marks half a chunk)."""
        self._writer.write(chunk, labels, probs)
        self._done.add(tuple(chunk.index))

    def mark_done(self, index: tuple[int, int]) -> None:
        self._writer.mark_done(index)
        self._done.add(tuple(index))

    @property
    def _writer(self) -> ChunkWriter:
        if not hasattr(self, "_w"):
            self._w = self.writer()
        return self._w

    def finalize(self, meta: dict[str, Any], pixel_size: float | None, pyramid: bool = True) -> Path:
        """Build pyramids, mark complete, rename ``OUT.partial`` -> ``OUT``."""
        from napari_dfa.io.pyramid import build_pyramid, multiscales_attrs

        n = build_pyramid(self.group, "labels", "labels", start=self.inline) if pyramid else self.inline + 1
        self.group["labels"].attrs.update(multiscales_attrs("labels", n, pixel_size))
        if self.probabilities:
            npr = build_pyramid(self.group, "probabilities", "mean", start=self.inline) if pyramid else n
            self.group["probabilities"].attrs.update(multiscales_attrs("probabilities", npr, pixel_size, True))
        attrs = dict(self.group.attrs["napari_dfa"])
        attrs.update(_jsonable(meta))
        attrs["complete"] = True
        self.group.attrs["napari_dfa"] = attrs
        shutil.rmtree(self.done_dir, ignore_errors=True)
        if self.path.exists():  # overwrite of a finished napari-dfa store (checked in __init__)
            old = self.path.with_name(self.path.name + f".old-{os.getpid()}")
            os.replace(self.path, old)
            os.replace(self.partial, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.partial, self.path)
        return self.path


class ChunkWriter:
    """Writes chunk data then the chunk's marker into an unfinished store."""

    def __init__(self, partial: str, probabilities: bool, inline: int = 0) -> None:
        self.partial = partial
        self.probabilities = probabilities
        self.inline = inline
        self._group = None
        self._arrays: dict = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_group": None, "_arrays": {}}

    @property
    def group(self):
        if self._group is None:
            import zarr

            with fast_codecs():
                self._group = zarr.open_group(self.partial, mode="r+")
        return self._group

    def array(self, name: str):
        """The output array ``name``, set to write every chunk: zarr's default test for
        chunks that are all fill value (``np.array_equal``) took 2/3 of the time of
        writing one, and a chunk of zeros compresses to almost nothing anyway."""
        if name not in self._arrays:
            with fast_codecs():  # encoded and written by zarrs where installed
                arr = self.group[name]
                if hasattr(arr, "with_config"):  # zarr >= 3.1
                    arr = arr.with_config({"write_empty_chunks": True})
            self._arrays[name] = arr
        return self._arrays[name]

    def write(self, chunk, labels: np.ndarray, probs: np.ndarray | None = None) -> None:
        """The chunk at level 0 and its blocks of the inline pyramid levels, then its marker."""
        from napari_dfa.io.pyramid import downsample2

        probs = probs if self.probabilities else None
        for lv in range(self.inline + 1):
            if lv:
                labels = downsample2(labels, "labels")
                probs = None if probs is None else downsample2(probs, "mean")
            y, x = chunk.y0 >> lv, chunk.x0 >> lv  # origins are multiples of 2**lv
            self.array(f"labels/{lv}")[y : y + labels.shape[0], x : x + labels.shape[1]] = labels
            if probs is not None:
                self.array(f"probabilities/{lv}")[:, y : y + probs.shape[1], x : x + probs.shape[2]] = probs
        self.mark_done(chunk.index)

    def mark_done(self, index: tuple[int, int]) -> None:
        with open(Path(self.partial) / "_done" / f"{index[0]}.{index[1]}", "w"):
            pass


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
