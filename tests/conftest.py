"""Shared fixtures. GUI tests need an X server: pytest-xvfb starts Xvfb; on a machine
without one, tests marked ``needs_gl`` are skipped instead of aborting the run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _have_display() -> bool:
    return bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def pytest_collection_modifyitems(config, items):
    if _have_display():
        return
    skip = pytest.mark.skip(reason="no X server (install xvfb) for tests that need OpenGL")
    for item in items:
        if "needs_gl" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED


@pytest.fixture
def tiny_config():
    from napari_dfa.model import ModelConfig

    return ModelConfig(
        class_names=["a", "b", "c"],
        prior=[0.7, 0.25, 0.05],
        backbone_channels=[8, 16, 16, 16],
        backbone_blocks=[1, 1, 1, 1],
        hidden_dim=16,
        mask_dim=8,
        num_heads=2,
        dec_layers=3,
        ffn_dim=32,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)
