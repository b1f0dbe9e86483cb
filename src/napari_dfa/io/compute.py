"""Small dask computations in this process, without dask looking for a cluster.

Given no scheduler, or one by name, dask imports ``dask.distributed`` to look for a
client first (0.2-1 s, once per process: a tenth of a 2-second GPU run). The engine's
own reads (a window, a thumbnail for tissue detection, the last pyramid levels) always
run here, so they give dask its local schedulers as functions, which it takes as is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(a, threads: bool = True) -> np.ndarray:
    """``a`` (numpy, zarr or dask) as a numpy array; a dask array computed on dask's
    threads, or in the calling thread (``threads=False``: for reads that already run on
    a pool of their own)."""
    if hasattr(a, "dask") and hasattr(a, "compute"):
        import dask.local
        import dask.threaded

        return np.asarray(a.compute(scheduler=dask.threaded.get if threads else dask.local.get_sync))
    return np.asarray(a)
