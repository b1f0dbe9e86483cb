"""Regenerate the shipped sample (deterministic): a synthetic H&E image, its ground
truth and user-like scribbles (~2 % of pixels).

    python sample_data/make_sample.py
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio

from napari_dfa.data.scribbles import make_scribbles
from napari_dfa.data.synthetic import generate_tissue

HERE = Path(__file__).resolve().parent
SIZE = (768, 768)
SEED = 2026


def main() -> None:
    s = generate_tissue(SIZE, seed=SEED)
    scribbles = make_scribbles(s.labels, fraction=0.02, seed=SEED)
    iio.imwrite(HERE / "tissue_image.png", s.image)
    iio.imwrite(HERE / "tissue_ground_truth.png", s.labels)
    iio.imwrite(HERE / "tissue_scribbles.png", scribbles)
    meta = {
        "class_names": list(s.class_names),
        "class_colors": list(s.class_colors),
        "generator": {"function": "napari_dfa.data.synthetic.generate_tissue", "shape": SIZE, "seed": SEED},
        "scribbles": {"function": "napari_dfa.data.scribbles.make_scribbles", "fraction": 0.02, "seed": SEED},
    }
    (HERE / "tissue_classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"scribbled {float((scribbles > 0).mean()):.2%} of pixels; wrote sample to {HERE}")


if __name__ == "__main__":
    main()
