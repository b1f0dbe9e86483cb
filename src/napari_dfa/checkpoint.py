"""Model folders: ``model.safetensors`` + ``config.json``; loading never unpickles.

A model folder is self-describing: the architecture, class names and colours, input
normalisation, frequency prior, DFA bias settings and a training summary live in
``config.json`` (validated by :mod:`napari_dfa.config_schema`); the weights live in
``model.safetensors``. Saving is atomic: the folder is written under a temporary name
and renamed into place, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from napari_dfa.config_schema import FORMAT_NAME, FORMAT_VERSION, validate_config
from napari_dfa.errors import CheckpointError

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "load_model",
    "read_config",
    "save_model",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}


def save_model(model, folder: str | Path, training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a :class:`~napari_dfa.model.DFASegmenter`) to ``folder`` atomically.

    An existing napari-dfa model folder at that path is replaced; any other existing
    path is refused, so a user's files are never overwritten by mistake.
    """
    from safetensors.torch import save_file

    from napari_dfa import __version__

    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and _is_model_folder_or_empty(folder)):
        raise CheckpointError(
            f"cannot save the model to {folder}: it exists and is not a napari-dfa model folder; "
            "choose a new folder name"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "napari_dfa_version": __version__,
        "model": model.config.to_dict(),
        "training": training or {},
    }
    validate_config(config)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model folder is an ordinary folder
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _is_model_folder_or_empty(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()}
    return not names or names <= {CONFIG_FILE, WEIGHTS_FILE}


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``config.json`` of a model folder (no weights are read)."""
    folder = _check_folder(Path(folder))
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the model folder is corrupt") from exc
    validate_config(config, where=str(path))
    return config


def load_model(folder: str | Path, device: str = "cpu"):
    """Load a model folder into a :class:`~napari_dfa.model.DFASegmenter` (eval mode).

    Raises:
        CheckpointError: with a message naming the problem and the fix, for a missing
            folder, a pickle/``.pt`` file, a folder of another format, a config of an
            unknown version, a missing field, or truncated/mismatched weights.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from napari_dfa.model import DFASegmenter, ModelConfig

    config = read_config(folder)
    folder = Path(folder)
    weights = folder / WEIGHTS_FILE
    _check_weights_file(weights)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is truncated or corrupt ({exc}); re-copy or re-train the model") from exc
    model = DFASegmenter(ModelConfig.from_dict(config["model"]))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            f"the weights in {weights} do not match its config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]}); "
            "the folder mixes files of different models"
        )
    model.load_state_dict(state)
    model.training_summary = config.get("training", {})
    model.folder = str(folder)
    return model.to(torch.device(device)).eval()


def _check_folder(folder: Path) -> Path:
    if folder.is_file():
        if folder.suffix.lower() in _PICKLE_SUFFIXES or _looks_like_pickle(folder):
            raise CheckpointError(
                f"{folder} is a pickle/PyTorch file; napari-dfa never unpickles models (it could run "
                "arbitrary code). Give a napari-dfa model folder (model.safetensors + config.json)"
            )
        raise CheckpointError(f"{folder} is a file; give a napari-dfa model folder (model.safetensors + config.json)")
    if not folder.exists():
        raise CheckpointError(f"model folder {folder} does not exist; check the path")
    if not (folder / CONFIG_FILE).is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES]
        hint = f" (it holds {pickles[0]}, a pickle format napari-dfa refuses to load)" if pickles else ""
        raise CheckpointError(
            f"{folder} is not a napari-dfa model folder: no {CONFIG_FILE}{hint}; give a folder saved by napari-dfa"
        )
    return folder


def _looks_like_pickle(path: Path) -> bool:
    """Pickle (protocol 2+: ``0x80`` then the protocol number) or zip (``torch.save``).

    A safetensors file starts with an 8-byte header length and then ``{``: its first byte
    can be ``0x80`` too, so that is checked first.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:2] == b"PK"


def _check_weights_file(weights: Path) -> None:
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the model folder is incomplete")
    if _looks_like_pickle(weights):
        raise CheckpointError(f"{weights} is a pickle/zip file disguised as safetensors; napari-dfa refuses to load it")
