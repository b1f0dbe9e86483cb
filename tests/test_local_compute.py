"""The engine's dask computations stay in this process and never look for a cluster."""

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np, torch, zarr
from napari_dfa.data.synthetic import generate_tissue
from napari_dfa.infer.engine import EngineConfig, segment
from napari_dfa.io.images import open_image
from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.train import run_to_end

img = generate_tissue((1100, 1200), seed=1).image
g = zarr.open_group(sys.argv[1] + "/in.zarr", mode="w")
datasets = []
for i in range(2):  # (c, y, x) on disk: windows are read through dask
    level = np.ascontiguousarray(img[:: 2**i, :: 2**i].transpose(2, 0, 1))
    g.create_array(str(i), data=level, chunks=(3, 256, 256))
    datasets.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1, 2**i, 2**i]}]})
g.attrs["multiscales"] = [{"axes": ["c", "y", "x"], "datasets": datasets}]
model = DFASegmenter(ModelConfig(class_names=["a", "b"], backbone_channels=[8, 8, 8, 8], backbone_blocks=[1, 1, 1, 1],
                     hidden_dim=8, mask_dim=8, num_heads=2, dec_layers=1, ffn_dim=16)).eval()
cfg = EngineConfig(tile=256, device="cpu", tissue_detection=True)
res = run_to_end(segment(open_image(sys.argv[1] + "/in.zarr"), model, sys.argv[1] + "/out.zarr", cfg))
assert len(list(zarr.open_group(str(res.path), mode="r")["labels"].array_keys())) > 2  # the last levels built by dask
print("distributed" in sys.modules)
"""


def test_a_local_run_never_imports_dask_distributed(tmp_path):
    """Dask computations of the engine (windows read through dask, the tissue thumbnail,
    the last pyramid levels) name a local scheduler: no 0.2-1 s import of
    dask.distributed to look for a cluster."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
