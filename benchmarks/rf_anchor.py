"""The classical scribble classifier used by ilastik / napari-apoc / QuPath: a random
forest on scikit-image multiscale filter features (benchmark anchor; needs scikit-learn,
``pip install napari-dfa[benchmark]``)."""

from __future__ import annotations

import numpy as np
from skimage.feature import multiscale_basic_features

MAX_SAMPLES = 60_000


def features(image: np.ndarray) -> np.ndarray:
    img = image[..., :3].astype(np.float32) / 255.0
    return multiscale_basic_features(
        img, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16, channel_axis=-1
    )


def rf_fit_predict(train_images, train_labels, test_images, seed: int = 0, trees: int = 100):
    """Fit on annotated pixels (label > 0), predict class 1..K for every test pixel."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for img, lab in zip(train_images, train_labels):
        feats = features(img)
        m = lab > 0
        xs.append(feats[m])
        ys.append(lab[m])
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if len(y) > MAX_SAMPLES:
        sel = rng.choice(len(y), MAX_SAMPLES, replace=False)
        x, y = x[sel], y[sel]
    clf = RandomForestClassifier(n_estimators=trees, max_depth=20, n_jobs=-1, random_state=seed)
    clf.fit(x, y)
    preds = []
    for img in test_images:
        f = features(img)
        preds.append(clf.predict(f.reshape(-1, f.shape[-1])).reshape(img.shape[:2]).astype(np.uint8))
    return preds
