"""Periodic training checkpoints that a fine-tune can resume from (no pickle).

A checkpoint folder holds ``model/`` (an ordinary model folder, loadable on its own),
``optimizer.safetensors`` (AdamW moments and the torch random-generator state) and
``train_state.json`` (step, elapsed time, losses, optimizer hyper-parameters); training
batches are a function of the seed and the step, so they need no state of their own.
It is written under a temporary name and renamed, so an interruption never leaves a
half-written checkpoint. Resuming restores everything, so
on the CPU a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from napari_dfa.errors import CheckpointError

__all__ = ["load_train_state", "save_train_state"]

STATE_FILE = "train_state.json"
OPT_FILE = "optimizer.safetensors"
VERSION = 1


def save_train_state(folder: str | Path, model, optimizer, state: dict[str, Any], generator) -> Path:
    import torch
    from safetensors.torch import save_file

    from napari_dfa.checkpoint import save_model

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        save_model(model, tmp / "model", training={"checkpoint_step": state["step"]})
        sd = optimizer.state_dict()
        tensors = {"rng.torch": generator.get_state()}
        for idx, st in sd["state"].items():
            for name, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"state.{idx}.{name}"] = t.detach().cpu().contiguous()
        save_file(tensors, str(tmp / OPT_FILE))
        meta = dict(state, version=VERSION, param_groups=sd["param_groups"])
        (tmp / STATE_FILE).write_text(json.dumps(meta))
        os.chmod(tmp, 0o755)
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


def load_train_state(folder: str | Path):
    """-> (model, optimizer state dict, state, torch generator state); never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from napari_dfa.checkpoint import load_model

    folder = Path(folder)
    if not (folder / STATE_FILE).is_file() or not (folder / OPT_FILE).is_file():
        raise CheckpointError(
            f"{folder} is not a napari-dfa training checkpoint (no {STATE_FILE} / {OPT_FILE}); "
            "give a folder written by a fine-tune with checkpoint_every"
        )
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        tensors = load_file(str(folder / OPT_FILE))
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise CheckpointError(f"the training checkpoint {folder} is corrupt ({exc})") from exc
    if state.get("version") != VERSION:
        raise CheckpointError(f"{folder} has training-checkpoint version {state.get('version')}; expected {VERSION}")
    model = load_model(folder / "model")
    opt_state: dict = {"state": {}, "param_groups": state.pop("param_groups")}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[name] = value
    return model, opt_state, state, tensors["rng.torch"]
