"""The Qt-free parts behind the widgets: shared model state, job generators, and the
promise that importing the widget modules stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from napari_dfa._widgets.state import ModelState, model_state


class FakeModel:
    class config:  # noqa: N801 - mimics ModelConfig
        class_names = ["a", "b"]
        class_colors = ["#ff0000", "#00ff00"]
        bias_placement, bias_init, bias_learnable = "query", "neg_log_freq", True


def test_model_state_callbacks_and_weak_subscribers():
    state = ModelState()
    seen = []

    class Widget:
        def on_change(self, s):
            seen.append(s.source)

    w = Widget()
    state.connect(w.on_change)
    disconnect = state.connect(lambda s: seen.append("fn:" + s.source))
    state.set_model(FakeModel(), "here")
    assert seen == ["here", "fn:here"] and state.model.source == "here"
    assert state.describe()["class_names"] == ["a", "b"]
    del w  # a closed widget is not kept alive, nor called
    disconnect()
    state.set_model(FakeModel(), "there")
    assert seen == ["here", "fn:here"]


def test_model_state_is_per_viewer_and_dies_with_it():
    import gc
    import weakref

    class Viewer:
        pass

    class Proxy:  # like napari's PublicOnlyProxy: a new wrapper object per widget
        def __init__(self, v):
            self.__wrapped__ = v

    v1, v2 = Viewer(), Viewer()
    assert model_state(Proxy(v1)) is model_state(Proxy(v1)) is model_state(v1)
    assert model_state(v1) is not model_state(v2)
    ref = weakref.ref(model_state(v2))
    del v2
    gc.collect()
    assert ref() is None


def test_widget_modules_import_light():
    code = (
        "import sys\n"
        "import napari_dfa._widgets, napari_dfa._widgets.model_widget, napari_dfa._widgets.finetune_widget\n"
        "import napari_dfa._widgets.segment_widget, napari_dfa._widgets.difficulty_widget\n"
        "import napari_dfa._widgets._jobs, napari_dfa._sample_data, napari_dfa.data.regions\n"
        "heavy = ('torch', 'dask', 'zarr', 'napari_dfa.train', 'napari_dfa.infer.engine', 'matplotlib')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


def _drive(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_train_job_with_preview_on_a_crop():
    from napari_dfa._widgets._jobs import PreviewEvent, PreviewSettings, StatusEvent, train_job
    from napari_dfa.data.regions import Region, annotated_regions, read_region
    from napari_dfa.sample import load_default_model, load_sample
    from napari_dfa.train import TrainConfig, TrainProgress

    s = load_sample()
    init = load_default_model()
    weights = {k: v.clone() for k, v in init.state_dict().items()}
    regions = annotated_regions(s.scribbles, chunk=256, margin=32)
    crops = [read_region(s.scribbles, r) for r in regions]
    preview = PreviewSettings(every=2)
    preview.region = Region(0, 0, 96, 128)
    cfg = TrainConfig(steps=4, batch_size=2, crop_size=64, device="cpu")
    events, result = _drive(
        train_job(
            s.image,
            regions,
            crops,
            s.class_names,
            s.class_colors,
            "plain",
            init,
            cfg,
            preview,
            threads=1,
            bias_placement="query",
            bias_init="neg_log_freq",
        )
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "StatusEvent" and kinds.count("TrainProgress") == 4 and kinds.count("PreviewEvent") == 2
    prev = [e for e in events if isinstance(e, PreviewEvent)]
    assert prev[0].labels.shape == (96, 128) and prev[0].labels.dtype == np.uint8
    assert all(isinstance(e, (StatusEvent, TrainProgress, PreviewEvent)) for e in events)
    assert result.model.training_summary["regions"] == [[r.y0, r.x0, r.y1, r.x1] for r in regions]
    assert all(np.array_equal(v.numpy(), weights[k].numpy()) for k, v in init.state_dict().items())


def test_segment_job_cancel_removes_its_temporary_output(tmp_path, monkeypatch):
    import tempfile

    from napari_dfa._widgets._jobs import segment_job
    from napari_dfa.infer.engine import EngineConfig
    from napari_dfa.sample import load_default_model, load_sample

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    image = np.tile(load_sample().image[:256, :256], (2, 2, 1))
    gen = segment_job(image, load_default_model(), None, EngineConfig(tile=128, device="cpu"), threads=1)
    first = next(gen)
    assert first.total == 16
    assert list(tmp_path.iterdir())
    gen.close()  # what the widget does (in a background thread) after worker.quit()
    assert not list(tmp_path.iterdir())
