import subprocess
import sys

CORE = [
    "napari_dfa",
    "napari_dfa.model",
    "napari_dfa.data.synthetic",
    "napari_dfa.data.scribbles",
    "napari_dfa.train",
    "napari_dfa.metrics",
    "napari_dfa.checkpoint",
    "napari_dfa.cli",
    "napari_dfa.demo",
    "napari_dfa.evaluate",
    "napari_dfa.predict",
]


def test_core_imports_neither_qt_nor_napari():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "gui = ('napari.', 'qtpy', 'PyQt', 'PySide', 'magicgui')\n"
        + "bad = sorted(m for m in sys.modules if m == 'napari' or m.startswith(gui))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imports GUI modules: {out.stdout}"


def test_package_import_is_light():
    code = "import sys, napari_dfa; print(any(m in sys.modules for m in ('torch', 'dask', 'qtpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
