"""Initial encoder weights: strict loading of a local safetensors file into a timm body.

Files are read only as safetensors, never unpickled. ``sample_data/encoder_weights.py``
converts an EfficientNet(-Lite) state dict with the key names of ``EfficientNet-PyTorch``
(``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) into timm's names with
:func:`to_timm_names`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from napari_dfa.checkpoint import _PICKLE_SUFFIXES, _looks_like_pickle
from napari_dfa.errors import CheckpointError

__all__ = ["CONVERTER", "load_strict", "read_weights", "to_timm_names"]

CONVERTER = "sample_data/encoder_weights.py"
HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")  # a classifier's head, absent from a features_only body
_SHOWN = 5

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
# EfficientNet-PyTorch block parts -> timm InvertedResidual / DepthwiseSeparableConv parts
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
    **_SE,
}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_SE}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def to_timm_names(state: dict[str, torch.Tensor], timm_model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an ``EfficientNet-PyTorch`` state dict to the names of a timm EfficientNet.

    The flat block index ``_blocks.N`` becomes ``blocks.S.I`` following the stage layout
    of ``timm_model.blocks``; keys that do not fit are kept as they are (a strict load
    then reports them).
    """
    blocks = [(f"blocks.{s}.{i}", block) for s, stage in enumerate(timm_model.blocks) for i, block in enumerate(stage)]
    out = {}
    for key, value in state.items():
        top, _, rest = key.partition(".")
        match = _BLOCK_KEY.match(key)
        if top in _TOP:
            key = f"{_TOP[top]}.{rest}"
        elif match and int(match[1]) < len(blocks):
            prefix, block = blocks[int(match[1])]
            parts = _INVERTED if hasattr(block, "conv_pwl") else _SEPARABLE
            if match[2] in parts:
                key = f"{prefix}.{parts[match[2]]}.{match[3]}"
        out[key] = value
    return out


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local safetensors file; :class:`CheckpointError` for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder weights {path} do not exist; give a local .safetensors file")
    if path.suffix.lower() in _PICKLE_SUFFIXES or _looks_like_pickle(path):
        raise CheckpointError(
            f"encoder weights {path} are a pickle/PyTorch file, which napari-dfa never loads (it could run "
            f"arbitrary code); convert it to safetensors with {CONVERTER}"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"encoder weights {path} are not a valid safetensors file ({exc})") from exc


def weights_provenance(path: str | Path) -> str:
    """Where a weights file came from: its ``source`` metadata (set by the converter) and
    its file name."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            source = (fh.metadata() or {}).get("source", "")
    except Exception:  # unreadable files are reported by read_weights
        source = ""
    return f"{source} ({Path(path).name})" if source else Path(path).name


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load ``state`` into ``module`` (a timm ``features_only`` body) with strict semantics.

    Classifier-head keys the body lacks are dropped and absent ``num_batches_tracked``
    counters are filled in; any other missing, unexpected or wrongly shaped key raises
    :class:`CheckpointError` naming ``source`` and the keys.
    """
    expected = module.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(HEAD_PREFIXES)}
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or bad_shape:
        problems = "; ".join(
            f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN])}{', ...' if len(keys) > _SHOWN else ''}"
            for kind, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape))
            if keys
        )
        raise CheckpointError(
            f"encoder weights {source} do not fit this encoder ({problems}); the file must hold weights of "
            f"this timm model with timm's key names (convert EfficientNet-PyTorch weights with {CONVERTER})"
        )
    module.load_state_dict(state, strict=True)
