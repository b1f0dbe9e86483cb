"""Regenerate the shipped sample (deterministic): a synthetic H&E image, its ground
truth and user-like scribbles (~2 % of pixels).

The image is re-stained (stronger haematoxylin, weaker eosin, a brown cast) to play
"a slide from another lab": the default model, trained on the generator's usual stain,
is noticeably worse on it, and the demo shows fine-tuning on the scribbles adapting it.

    python sample_data/make_sample.py
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio

from napari_dfa.data.augment import restain
from napari_dfa.data.scribbles import make_scribbles
from napari_dfa.data.synthetic import generate_tissue

HERE = Path(__file__).resolve().parent
SIZE = (768, 768)
SEED = 2026
RESTAIN = {"h": 1.4, "e": 0.7, "d": 0.03}


def main() -> None:
    s = generate_tissue(SIZE, seed=SEED)
    scribbles = make_scribbles(s.labels, fraction=0.02, seed=SEED)
    iio.imwrite(HERE / "tissue_image.png", restain(s.image, **RESTAIN))
    iio.imwrite(HERE / "tissue_ground_truth.png", s.labels)
    iio.imwrite(HERE / "tissue_scribbles.png", scribbles)
    meta = {
        "class_names": list(s.class_names),
        "class_colors": list(s.class_colors),
        "generator": {"function": "napari_dfa.data.synthetic.generate_tissue", "shape": SIZE, "seed": SEED},
        "restain": {"function": "napari_dfa.data.augment.restain", **RESTAIN},
        "scribbles": {"function": "napari_dfa.data.scribbles.make_scribbles", "fraction": 0.02, "seed": SEED},
    }
    (HERE / "tissue_classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"scribbled {float((scribbles > 0).mean()):.2%} of pixels; wrote sample to {HERE}")


if __name__ == "__main__":
    main()
