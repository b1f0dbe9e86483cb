"""napari-dfa: Dynamic Focal Attention segmentation for histopathology in napari.

The package import is deliberately light: no torch, dask or Qt is imported here, so
napari starts fast. Import the core modules (``napari_dfa.model``, ``napari_dfa.train``,
...) explicitly.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
