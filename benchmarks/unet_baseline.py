"""The deep baseline users reach for: a U-Net (segmentation_models_pytorch) trained on the
same annotations, crops, augmentation and wall-time budget as the DFA model.

``unet`` is smp's ``Unet("resnet18")`` from scratch (no ImageNet weights can be downloaded
here); ``unet:lite0`` is ``Unet("tu-tf_efficientnet_lite0")`` with the ImageNet
EfficientNet-Lite0 encoder weights the DFA model can start from. Loss: cross-entropy
(+ soft Dice, as the DFA loss) on annotated pixels only; ``inverse_freq`` weights when
asked. Needs the benchmark extra (``pip install napari-dfa[benchmark]``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

ENCODERS = {"unet": "resnet18", "unet:lite0": "tu-tf_efficientnet_lite0"}


def build_unet(method: str, num_classes: int, encoder_weights: str | None = None) -> torch.nn.Module:
    from napari_dfa.model.timm_import import import_timm

    import_timm()  # timm (and with it smp) imports beside a CPU-only torch
    import segmentation_models_pytorch as smp

    net = smp.Unet(encoder_name=ENCODERS[method], encoder_weights=None, classes=num_classes)
    if method == "unet:lite0":
        if not encoder_weights:
            raise SystemExit("unet:lite0 needs --encoder-weights (made by sample_data/encoder_weights.py)")
        from safetensors.torch import load_file

        from napari_dfa.model.pretrained import load_strict

        load_strict(net.encoder.model, load_file(encoder_weights), encoder_weights)
    return net


def _stats(labels, images) -> tuple[torch.Tensor, torch.Tensor]:
    px = np.concatenate([img[lab > 0][:, :3] for img, lab in zip(images, labels)]).astype(np.float32) / 255
    return torch.tensor(px.mean(0)).view(1, 3, 1, 1), torch.tensor(np.maximum(px.std(0), 0.02)).view(1, 3, 1, 1)


def unet_fit_predict(
    method,
    train_images,
    train_labels,
    test_images,
    seconds,
    seed=0,
    batch=8,
    crop=256,
    class_weights=None,
    class_balanced=False,
    encoder_weights=None,
):
    """Train for ``seconds`` of wall time, predict classes 1..K for every test pixel."""
    from napari_dfa.data.augment import AugmentConfig, augment_batch
    from napari_dfa.data.samples import AnnotatedImage, CropSampler

    k = int(max(lab.max() for lab in train_labels))
    torch.manual_seed(seed)
    net = build_unet(method, k, encoder_weights)
    mean, std = _stats(train_labels, train_images)
    data = [AnnotatedImage(img, lab.astype(np.uint8)) for img, lab in zip(train_images, train_labels)]
    cfg = AugmentConfig()
    sampler = CropSampler(data, k, crop, class_balanced, cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    net.train()
    t0, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < seconds:
        frac = elapsed / seconds
        for g in opt.param_groups:
            g["lr"] = 1e-3 * (max(frac / 0.05, 0.02) if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * frac)))
        imgs, labs = sampler.batch(batch, step)
        x, y = augment_batch(torch.from_numpy(imgs), torch.from_numpy(labs), crop, cfg, gen)
        logits = net((x - mean) / std)
        target = y - 1  # 0 = unlabeled -> -1, ignored
        loss = F.cross_entropy(logits, target, weight=weight, ignore_index=-1)
        valid = target >= 0
        if valid.any():  # soft Dice on annotated pixels, as in the DFA loss
            prob = logits.softmax(1).permute(0, 2, 3, 1)[valid]
            onehot = F.one_hot(target[valid], k).float()
            dice = 1 - (2 * (prob * onehot).sum(0) + 1) / (prob.sum(0) + onehot.sum(0) + 1)
            loss = loss + (dice * weight / weight.mean()).mean() if weight is not None else loss + dice.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
    net.eval()
    preds = []
    with torch.no_grad():
        for img in test_images:
            h, w = img.shape[:2]
            x = torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1)[None].float() / 255
            x = F.pad((x - mean) / std, (0, (-w) % 32, 0, (-h) % 32), mode="reflect")
            preds.append((net(x)[0, :, :h, :w].argmax(0) + 1).numpy().astype(np.uint8))
    return preds, {"steps": step}
