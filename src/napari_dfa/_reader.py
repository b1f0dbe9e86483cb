"""npe2 reader: pyramidal TIFF/OME-TIFF/SVS/NDPI and zarr/OME-Zarr as multiscale layers.

A napari-dfa segmentation store opens as a multiscale Labels layer with the model's class
colours (plus probability layers when stored). Nothing is loaded eagerly.
"""

from __future__ import annotations

import json
from pathlib import Path

from napari_dfa.layers import labels_colormap

__all__ = ["get_reader"]

_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".bif", ".btf", ".zarr")


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path).rstrip("/"))
    if not p.name.lower().endswith(_SUFFIXES):
        return None
    if (
        p.suffix.lower() == ".zarr"
        and not (p / "zarr.json").exists()
        and not (p / ".zattrs").exists()
        and not (p / ".zgroup").exists()
    ):
        return None
    return read_layers


def _segmentation_attrs(p: Path) -> dict | None:
    meta = p / "zarr.json"
    if not meta.is_file():
        return None
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {}).get("napari_dfa")
    except (OSError, json.JSONDecodeError):
        return None
    return attrs if attrs and attrs.get("format") == "napari-dfa-segmentation" else None


def read_layers(path):
    if isinstance(path, list):
        path = path[0]
    p = Path(str(path).rstrip("/"))
    seg = _segmentation_attrs(p)
    if seg is not None:
        return _segmentation_layers(p, seg)
    from napari_dfa.io.images import open_image

    pyr = open_image(p)
    levels = pyr.levels
    rgb = levels[0].shape[-1] in (3, 4)
    if not rgb:
        levels = [lv[..., 0] for lv in levels]
    scale = (pyr.pixel_size, pyr.pixel_size) if pyr.pixel_size else None
    meta = {
        "name": p.stem,
        "rgb": rgb,
        "multiscale": len(levels) > 1,
        "metadata": {"path": str(p), "pixel_size_um": pyr.pixel_size},
    }
    if scale:
        meta["scale"] = scale
    return [(levels if len(levels) > 1 else levels[0], meta, "image")]


def _segmentation_layers(p: Path, seg: dict):
    import dask.array as da
    import zarr

    from napari_dfa.io.codecs import fast_codecs

    g = zarr.open_group(str(p), mode="r")
    with fast_codecs():  # napari's reads decoded by zarrs where installed
        names = sorted(g["labels"].array_keys(), key=int)
        levels = [da.from_zarr(g[f"labels/{n}"]) for n in names]
        probabilities = None
        if "probabilities" in g:
            probabilities = [
                da.from_zarr(g[f"probabilities/{n}"]) for n in sorted(g["probabilities"].array_keys(), key=int)
            ]
    px = seg.get("pixel_size_um")
    scale = (px, px) if px else (1.0, 1.0)
    cmap = labels_colormap(seg.get("class_colors", []), seg.get("label_values"))
    features = None
    if seg.get("class_names"):
        values = seg.get("label_values") or list(range(1, len(seg["class_names"]) + 1))
        top = max([0, *values])
        names_by_value = ["background"] * (top + 1)
        for v, n in zip(values, seg["class_names"]):
            names_by_value[v] = n
        features = {"class": names_by_value}
    layers = [
        (
            levels if len(levels) > 1 else levels[0],
            {
                "name": f"{p.stem} labels",
                "multiscale": len(levels) > 1,
                "colormap": cmap,
                "scale": scale,
                "features": features,
                "metadata": {"napari_dfa": seg},
            },
            "labels",
        )
    ]
    if probabilities is not None:
        for k, name in enumerate(seg.get("class_names", [])):
            lv = [a[k] for a in probabilities]
            layers.append(
                (
                    lv if len(lv) > 1 else lv[0],
                    {
                        "name": f"P({name})",
                        "multiscale": len(lv) > 1,
                        "scale": scale,
                        "visible": False,
                        "colormap": "magma",
                        "contrast_limits": (0, 255 if lv[0].dtype == "uint8" else 1),
                    },
                    "image",
                )
            )
    return layers
