"""Reading a user's annotation layer (Labels or Shapes) as label crops, without
modifying it and without reading more of a large layer than the annotated parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_dfa.data.regions import Region, annotated_regions, rasterize_shapes, read_region
from napari_dfa.errors import InputError

__all__ = ["Annotations", "class_colors", "read_annotations"]

CLASS_FEATURES = ("class", "label", "class_name")


@dataclass
class Annotations:
    """Annotated regions (level-0 px of the image) and their label crops (0 = unlabeled)."""

    layer_name: str
    regions: list[Region]
    labels: list[np.ndarray]
    class_names: list[str]  # names of classes 1..K (K >= the largest label value)
    feature_names: list[str] = field(default_factory=list)  # names the layer itself gives

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def pixels(self) -> int:
        return int(sum(int(np.count_nonzero(lab)) for lab in self.labels))


def _feature_column(layer: Any) -> list | None:
    features = getattr(layer, "features", None)
    if features is None or not len(features):
        return None
    for col in CLASS_FEATURES:
        if col in features.columns:
            return list(features[col])
    return None


def _complete(names: Sequence[str], k: int) -> list[str]:
    """``names`` extended with ``class_i`` up to ``k`` classes."""
    names = [str(n) for n in names]
    return names + [f"class_{i}" for i in range(len(names) + 1, k + 1)]


def _read_labels(layer: Any, image_shape: tuple[int, int], names: Sequence[str], margin: int) -> Annotations:
    data = layer.data[0] if layer.multiscale else layer.data
    shape = tuple(int(s) for s in data.shape)
    if len(shape) != 2:
        raise InputError(
            f"annotation layer '{layer.name}' has {len(shape)} dimensions {shape}; the Fine-tune widget "
            "needs a 2-D Labels layer on the image: add one with Layers > New Labels layer"
        )
    if shape != tuple(image_shape):
        raise InputError(
            f"annotation layer '{layer.name}' is {shape[0]} x {shape[1]} px but the image is "
            f"{image_shape[0]} x {image_shape[1]} px (level 0); paint on a Labels layer of the image's size "
            "(select the image, then Layers > New Labels layer) or choose the matching image"
        )
    if not (np.issubdtype(np.dtype(data.dtype), np.integer) or data.dtype == bool):
        raise InputError(f"annotation layer '{layer.name}' has dtype {data.dtype}; labels must be integers")
    regions = annotated_regions(data, chunk=1024, margin=margin)
    crops = [read_region(data, r) for r in regions]
    top = max((int(c.max()) for c in crops if c.size), default=0)
    if top > 255:
        raise InputError(
            f"annotation layer '{layer.name}' uses label {top}; napari-dfa supports up to 255 classes: "
            "relabel the strokes 1..K"
        )
    crops = [c.astype(np.uint8) for c in crops]
    feature = _feature_column(layer)
    feature_names = [str(n) for n in feature[1:]] if feature and len(feature) > top else []
    base = feature_names or list(names)
    return Annotations(layer.name, regions, crops, _complete(base, max(top, len(base))), feature_names)


def _to_image_pixels(layer: Any, image_layer: Any, verts: np.ndarray) -> np.ndarray:
    s_scale = np.asarray(layer.scale, float)[-2:]
    s_trans = np.asarray(layer.translate, float)[-2:]
    i_scale = np.asarray(image_layer.scale, float)[-2:]
    i_trans = np.asarray(image_layer.translate, float)[-2:]
    world = np.asarray(verts, float)[:, -2:] * s_scale + s_trans
    return (world - i_trans) / i_scale


def _read_shapes(
    layer: Any, image_layer: Any, image_shape: tuple[int, int], names: Sequence[str], margin: int
) -> Annotations:
    if not len(layer.data):
        return Annotations(layer.name, [], [], list(names))
    column = _feature_column(layer)
    if column is None:
        raise InputError(
            f"shapes layer '{layer.name}' has no 'class' feature, so its shapes carry no class; give each "
            "shape a class name or number, e.g. layer.features = {'class': ['tumor', 'stroma', ...]} "
            "(one per shape)"
        )
    names = [str(n) for n in names]
    values = []
    for v in column:
        integral = isinstance(v, float) and np.isfinite(v) and float(v).is_integer()
        if isinstance(v, (int, np.integer)) or (isinstance(v, str) and v.isdigit()) or integral:
            values.append(int(v))
        elif isinstance(v, str) and v:
            if v not in names:
                names.append(v)
            values.append(names.index(v) + 1)
        else:
            values.append(0)  # no class: ignored
    verts = [_to_image_pixels(layer, image_layer, v) for v in layer.data]
    widths = np.asarray(layer.edge_width, float) / float(np.asarray(image_layer.scale, float)[-1])
    regions, crops = rasterize_shapes(verts, list(layer.shape_type), values, image_shape, list(widths), margin)
    top = max(values, default=0)
    if top > 255:
        raise InputError(f"shapes layer '{layer.name}' uses class {top}; at most 255 classes are supported")
    return Annotations(layer.name, regions, crops, _complete(names, max(top, len(names))))


def read_annotations(layer: Any, image_layer: Any, names: Sequence[str], margin: int = 0) -> Annotations:
    """The annotations of a Labels or Shapes ``layer`` over ``image_layer`` (level 0).

    ``names`` are the class names known so far (the model's or the user's edits): the
    layer's own ``class`` feature takes precedence for Labels; Shapes whose class is a
    name not in ``names`` add a class. Raises :class:`~napari_dfa.errors.InputError`
    naming the problem and the fix.
    """
    from napari.layers import Image, Labels, Shapes

    if not isinstance(image_layer, Image):
        raise InputError("choose an image layer (an RGB H&E image) in 'image'")
    level0 = image_layer.data[0] if image_layer.multiscale else image_layer.data
    if not image_layer.rgb:
        raise InputError(
            f"image layer '{image_layer.name}' is not RGB (shape {tuple(level0.shape)}); DFA models need an "
            "RGB H&E image: open the colour image"
        )
    image_shape = (int(level0.shape[0]), int(level0.shape[1]))
    if isinstance(layer, Labels):
        return _read_labels(layer, image_shape, names, margin)
    if isinstance(layer, Shapes):
        return _read_shapes(layer, image_layer, image_shape, names, margin)
    kind = layer.__class__.__name__ if layer is not None else "nothing"
    raise InputError(
        f"the annotations must be a Labels layer (painted strokes, 0 = unlabeled) or a Shapes layer with a "
        f"'class' feature; got {kind}. Add one with Layers > New Labels layer"
    )


def class_colors(names: Sequence[str], model: Any = None, layer: Any = None) -> list[str]:
    """Class colours: ``model``'s (by name), else the colours the user paints with in the
    Labels ``layer`` (label ``i + 1``), else a palette."""
    from napari.layers import Labels

    from napari_dfa.model.config import default_colors

    known = dict(zip(model.config.class_names, model.config.class_colors, strict=False)) if model else {}
    colors = default_colors(len(names))
    if isinstance(layer, Labels) and len(names):
        rgba = layer.colormap.map(np.arange(1, len(names) + 1))
        colors = ["#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in px[:3])) for px in rgba]
    return [known.get(n, colors[i]) for i, n in enumerate(names)]
