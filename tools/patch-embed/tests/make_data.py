"""Write the small coords fixtures of the patch-embed CWL tests (run from this folder)."""

from pathlib import Path

import numpy as np

from gcmlm.pathology.core.clam_h5 import write_coords

HERE = Path(__file__).resolve().parent
# CLAM's attrs for CMU-1-Small-Region.svs (2220 x 2967, one level), 256 px patches at level 0.
ATTRS = {"patch_size": np.int64(256), "patch_level": np.int64(0), "downsample": np.array([1.0, 1.0]),
         "downsampled_level_dim": np.array([2220, 2967]), "level_dim": np.array([2220, 2967]),
         "name": "CMU-1-Small-Region"}

if __name__ == "__main__":
    coords = np.array([(512, 512), (768, 512), (1024, 512), (512, 768), (768, 768), (1536, 2048)])
    write_coords(HERE / "data" / "CMU-1-Small-Region.h5", coords, ATTRS)
    write_coords(HERE / "data" / "no-tissue.h5", np.zeros((0, 2)), ATTRS)
