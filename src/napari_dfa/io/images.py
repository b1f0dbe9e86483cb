"""Opening images as pyramids of dask arrays, never materialised.

* TIFF / OME-TIFF / SVS / NDPI-style pyramidal TIFFs through ``tifffile`` (``aszarr``);
* zarr / OME-Zarr stores (``multiscales`` metadata, NGFF 0.4 and 0.5);
* plain PNG / JPEG (read into memory: they are small).

Every level is a dask array ``(H, W, C)`` (channels last); the pixel size (µm/px) of
level 0 is read from the file where it says it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from napari_dfa.errors import InputError

__all__ = ["ImagePyramid", "open_image"]

TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".bif", ".btf")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class ImagePyramid:
    """Pyramid levels (dask arrays, level 0 = full resolution) of one RGB image."""

    levels: list
    pixel_size: float | None = None  # µm per pixel at level 0
    path: str | None = None
    _keep: list = field(default_factory=list, repr=False)  # open file handles
    # per level, the zarr array behind a dask level that is a plain view of it (else None):
    # the engine reads windows from it directly, which skips dask's per-chunk tasks
    sources: list = field(default_factory=list, repr=False)

    def reader(self, i: int):
        """Level ``i`` for reading windows: its zarr array where the dask level is a
        plain view of one (several times faster per window), else the dask array."""
        level = self.level(i)  # checks i
        src = self.sources[i] if i < len(self.sources) else None
        return level if src is None else src

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    def level(self, i: int):
        if not 0 <= i < len(self.levels):
            raise InputError(f"pyramid level {i} does not exist; this image has levels 0..{len(self.levels) - 1}")
        return self.levels[i]

    def downsample(self, i: int) -> tuple[float, float]:
        """Level ``i``'s pixel size relative to level 0 (y, x)."""
        h0, w0 = self.levels[0].shape[:2]
        h, w = self.levels[i].shape[:2]
        return h0 / h, w0 / w


def open_image(path: str | Path) -> ImagePyramid:
    """Open an image file or zarr store as a lazy pyramid; clear errors otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path")
    name = path.name.lower()
    if path.is_dir() or name.endswith(".zarr"):
        return _open_zarr(path)
    if name.endswith(TIFF_SUFFIXES):
        return _open_tiff(path)
    if name.endswith(PLAIN_SUFFIXES):
        import dask.array as da

        from napari_dfa.io.files import read_image

        arr = read_image(path)
        if arr.ndim == 2:
            arr = arr[..., None]
        level = da.from_array(arr, chunks=(1024, 1024, arr.shape[-1]))
        return ImagePyramid([level], None, str(path), sources=[arr])
    raise InputError(f"cannot open {path.name}: unsupported format; use TIFF/OME-TIFF/SVS, zarr/OME-Zarr, PNG or JPEG")


def _open_tiff(path: Path) -> ImagePyramid:
    import dask.array as da
    import tifffile
    import zarr

    try:
        tf = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        raise InputError(f"cannot read {path.name} as TIFF ({exc}); is the file complete?") from exc
    series = tf.series[0]
    _check_codec(tf, series, path)
    levels, sources = [], []
    for i in range(len(series.levels)):
        z = zarr.open(series.aszarr(level=i), mode="r")
        arr = da.from_zarr(z)
        levels.append(_channels_last(arr, series.levels[i].axes, path))
        sources.append(z if levels[-1] is arr else None)
    return ImagePyramid(levels, _tiff_pixel_size(tf), str(path), [tf], sources)


def _check_codec(tf, series, path: Path) -> None:
    """Refuse up front a TIFF whose tiles this installation cannot decode (e.g. JPEG or
    JPEG 2000 tiles, as in most SVS / NDPI slides, without ``imagecodecs``): otherwise
    the first window read would fail mid-run with a message about a corrupt file."""
    import tifffile

    for level in series.levels:
        code = level.keyframe.compression
        try:
            tifffile.TIFF.DECOMPRESSORS[code]
        except KeyError as exc:
            tf.close()
            name = getattr(code, "name", str(code))
            raise InputError(
                f"{path.name} is compressed with {name}, which this installation cannot decode "
                f"({exc.args[0] if exc.args else exc}); install the codecs with: pip install imagecodecs"
            ) from exc


def _channels_last(arr, axes: str, path: Path):
    """To (Y, X, C): drop singleton extra axes (T, Z, ...), refuse real stacks."""
    names = list(axes.upper())
    for i in range(len(names) - 1, -1, -1):
        if names[i] in "YXSC":
            continue
        if arr.shape[i] != 1:
            raise InputError(
                f"{path.name} has a {names[i]} axis of length {arr.shape[i]} (axes {axes}); napari-dfa "
                "segments one 2-D RGB plane at a time: export the plane you want"
            )
        arr = arr[(slice(None),) * i + (0,)]
        names.pop(i)
    cname = "S" if "S" in names else ("C" if "C" in names else None)
    if cname is None:
        return arr[..., None]
    ci = names.index(cname)
    if ci != len(names) - 1:
        arr = arr.transpose([i for i in range(len(names)) if i != ci] + [ci])
    return arr


def _tiff_pixel_size(tf) -> float | None:
    try:
        if tf.is_ome and tf.ome_metadata:
            m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tf.ome_metadata)
            if m:
                return float(m.group(1))
        page = tf.pages[0]
        desc = page.description or ""
        m = re.search(r"MPP\s*=\s*([0-9.]+)", desc)  # Aperio SVS
        if m:
            return float(m.group(1))
        tags = page.tags
        if "XResolution" in tags and "ResolutionUnit" in tags:
            num, den = tags["XResolution"].value
            unit = int(tags["ResolutionUnit"].value)
            if num and unit in (2, 3):  # inch, centimetre
                per_um = (num / den) / (25400.0 if unit == 2 else 10000.0)
                if per_um > 1e-3:  # ignore the 72-dpi default of screenshots
                    px = 1.0 / per_um
                    return px if px < 100 else None
    except Exception:  # noqa: BLE001 - metadata is optional
        return None
    return None


def _open_zarr(path: Path) -> ImagePyramid:
    from napari_dfa.io.codecs import fast_codecs

    with fast_codecs():  # the arrays made here keep zarrs' pipeline where it is installed
        return _open_zarr_levels(path)


def _open_zarr_levels(path: Path) -> ImagePyramid:
    import dask.array as da
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open {path} as a zarr store ({exc})") from exc
    if isinstance(node, zarr.Array):
        return _single_level(node, str(path))
    attrs = dict(node.attrs)
    ms = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
    if ms:
        ms0 = ms[0]
        axes = [a["name"] if isinstance(a, dict) else a for a in ms0.get("axes", [])]
        levels, scales, sources = [], [], []
        for ds in ms0["datasets"]:
            z = node[ds["path"]]
            arr = da.from_zarr(z)
            levels.append(_zarr_level(arr, axes))
            sources.append(z if levels[-1] is arr else None)
            for t in ds.get("coordinateTransformations", []):
                if t.get("type") == "scale":
                    scales.append(t["scale"])
        pixel = None
        if scales and "x" in axes:
            unit = next(
                (a.get("unit") for a in ms0.get("axes", []) if isinstance(a, dict) and a.get("name") == "x"), None
            )
            if unit in (None, "micrometer"):
                pixel = float(scales[0][axes.index("x")])
        return ImagePyramid(levels, pixel, str(path), sources=sources)
    arrays = sorted((k for k, v in node.arrays()), key=lambda k: (len(k), k))
    if not arrays:
        raise InputError(f"{path} is a zarr group without arrays or multiscales metadata")
    return _single_level(node[arrays[0]], str(path))


def _single_level(z, path: str) -> ImagePyramid:
    import dask.array as da

    arr = da.from_zarr(z)
    level = _zarr_level(arr, None)
    return ImagePyramid([level], None, path, sources=[z if level is arr else None])


def _zarr_level(arr, axes):
    """To (Y, X, C): OME axes may be (c, y, x), (t, c, z, y, x) ... with singleton extras."""
    if axes:
        names = list(axes)
        for i in range(len(names) - 1, -1, -1):
            if names[i] not in ("c", "y", "x") and arr.shape[i] == 1:
                arr = arr[(slice(None),) * i + (0,)]
                names.pop(i)
        if names[-1] != "c" and "c" in names:
            arr = arr.transpose([i for i, n in enumerate(names) if n != "c"] + [names.index("c")])
        elif "c" not in names:
            arr = arr[..., None]
        return arr
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = arr.transpose(1, 2, 0)
    return arr
