"""Validation of a model folder's ``config.json``.

Values are only ever read as data: types and ranges are checked here, nothing is
evaluated or used as an import path (a ``timm:`` backbone name is a model name looked
up in timm's registry, not an import).
"""

from __future__ import annotations

import math
import re
from typing import Any

from napari_dfa.errors import CheckpointError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "validate_config"]

FORMAT_NAME = "napari-dfa-model"
FORMAT_VERSION = 1

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_BACKBONE = re.compile(r"^(compact|timm:[A-Za-z0-9_.\-]+)$")

# field -> (type check, description of the allowed values)
_MODEL_FIELDS: dict[str, tuple[Any, str]] = {
    "class_names": (lambda v: _list_of(v, str) and 1 <= len(v) <= 255 and all(v), "1-255 non-empty names"),
    "class_colors": (lambda v: _list_of(v, str) and all(_COLOR.match(c) for c in v), "'#rrggbb' colours"),
    "backbone": (lambda v: isinstance(v, str) and bool(_BACKBONE.match(v)), "'compact' or 'timm:<name>'"),
    "backbone_channels": (
        lambda v: _list_of(v, int) and len(v) == 4 and all(0 < c <= 4096 for c in v),
        "4 positive integers",
    ),
    "backbone_blocks": (
        lambda v: _list_of(v, int) and len(v) == 4 and all(0 <= c <= 64 for c in v),
        "4 integers in 0..64",
    ),
    "hidden_dim": (lambda v: _int_in(v, 8, 4096), "an integer in 8..4096"),
    "mask_dim": (lambda v: _int_in(v, 4, 4096), "an integer in 4..4096"),
    "num_heads": (lambda v: _int_in(v, 1, 64), "an integer in 1..64"),
    "dec_layers": (lambda v: _int_in(v, 0, 64), "an integer in 0..64"),
    "ffn_dim": (lambda v: _int_in(v, 1, 65536), "an integer in 1..65536"),
    "window_cells": (lambda v: _int_in(v, 1, 63) and v % 2 == 1, "an odd integer in 1..63"),
    "mask_threshold": (lambda v: _num_in(v, 0.0, 1.0), "a number in [0, 1]"),
    "bias_placement": (lambda v: v in ("query", "key", "none"), "'query', 'key' or 'none'"),
    "bias_init": (lambda v: v in ("neg_log_freq", "log_freq", "zero"), "'neg_log_freq', 'log_freq' or 'zero'"),
    "bias_learnable": (lambda v: isinstance(v, bool), "true or false"),
    "bias_tau": (lambda v: _num_in(v, 0.0, 100.0), "a number in [0, 100]"),
    "prior": (
        lambda v: (
            _list_of(v, (int, float)) and all(_num_in(p, 0.0, 1.0) and p > 0 for p in v) and abs(sum(v) - 1.0) < 1e-3
        ),
        "positive frequencies summing to 1",
    ),
    "label_values": (
        lambda v: _list_of(v, int) and all(0 <= x <= 255 for x in v) and len(set(v)) == len(v),
        "unique integers in 0..255",
    ),
    "mean": (
        lambda v: _list_of(v, (int, float)) and len(v) == 3 and all(_num_in(x, 0, 1) for x in v),
        "3 numbers in [0, 1]",
    ),
    "std": (
        lambda v: _list_of(v, (int, float)) and len(v) == 3 and all(_num_in(x, 1e-4, 10) for x in v),
        "3 positive numbers",
    ),
}
# fields added after format_version 1 was frozen: checked when present, absent in older model folders
_OPTIONAL_FIELDS: dict[str, tuple[Any, str]] = {
    "encoder_weights": (lambda v: isinstance(v, str) and len(v) <= 1000, "a text of at most 1000 characters"),
}
_PER_CLASS = ("class_colors", "prior", "label_values")


def _list_of(v: Any, t: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, t) and not isinstance(x, bool) for x in v)


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num_in(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def validate_config(config: Any, where: str = "config.json") -> None:
    """Raise :class:`CheckpointError` naming the first problem of a model config."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must hold a JSON object; the model folder is corrupt")
    if config.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{where} is not a napari-dfa model config (format {config.get('format')!r}, "
            f"expected {FORMAT_NAME!r}); give a folder saved by napari-dfa"
        )
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where} has no integer format_version; the model folder is corrupt")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format_version {version}, newer than this napari-dfa understands "
            f"({FORMAT_VERSION}); upgrade napari-dfa"
        )
    if version < 1:
        raise CheckpointError(f"{where} has an unknown format_version {version}")
    model = config.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{where} has no 'model' section; the model folder is corrupt")
    for name, (check, allowed) in _MODEL_FIELDS.items():
        if name not in model:
            raise CheckpointError(f"{where} is missing the field model.{name}; the model folder is corrupt")
        if not check(model[name]):
            raise CheckpointError(f"{where}: model.{name} = {model[name]!r} is invalid (expected {allowed})")
    for name, (check, allowed) in _OPTIONAL_FIELDS.items():
        if name in model and not check(model[name]):
            raise CheckpointError(f"{where}: model.{name} = {model[name]!r} is invalid (expected {allowed})")
    k = len(model["class_names"])
    for name in _PER_CLASS:
        if len(model[name]) != k:
            raise CheckpointError(f"{where}: model.{name} has {len(model[name])} entries for {k} classes")
    if len(set(model["class_names"])) != k:
        raise CheckpointError(f"{where}: class names must be unique")
    if model["hidden_dim"] % model["num_heads"]:
        raise CheckpointError(f"{where}: hidden_dim must be divisible by num_heads")
    if not isinstance(config.get("training", {}), dict):
        raise CheckpointError(f"{where}: 'training' must be a JSON object")
