"""Regenerate the small fixtures of the radiomics-extract CWL tests (deterministic; run from the repo root).

    .venv/bin/python tools/radiomics-extract/tests/make_data.py

Two synthetic CTs (noise around 40 HU with a brighter lesion, label 1, and a second structure,
label 2) on a 0.7 x 0.7 x 2 mm grid, and a light parameter file so the tests run in seconds.
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

data = Path(__file__).resolve().parent / "data"
data.mkdir(exist_ok=True)
rng = np.random.default_rng(42)
for i, pid in enumerate(["P001", "P002"]):
    array = rng.normal(40, 25, size=(10, 20, 20)).round().astype(np.int16)
    labels = np.zeros(array.shape, np.uint8)
    labels[2:8, 4:11, 4:11 + 2 * i] = 1
    labels[2:8, 13:18, 3:17] = 2
    array[labels == 1] += 80
    for arr, name in ((array, "ct"), (labels, "seg")):
        image = sitk.GetImageFromArray(arr)
        image.SetSpacing((0.7, 0.7, 2.0))
        image.SetOrigin((-7.0, -7.0, 40.0))
        sitk.WriteImage(image, str(data / f"{pid}_{name}.nii.gz"))
params = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
          "featureClass": {"shape": None, "firstorder": None, "glcm": None, "glszm": None},
          "setting": {"binWidth": 25, "label": 1, "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline",
                      "voxelArrayShift": 1000}}
(data / "light_params.yaml").write_text("# A light CT setting for tests: Original + LoG(1 mm), four classes.\n"
                                        + yaml.safe_dump(params, sort_keys=False))

# Per-patient tables for the concat test, made by the stage itself.
from gcmlm.cli import main  # noqa: E402

for pid in ("P001", "P002"):
    assert main(["radiomics-extract", "--image", str(data / f"{pid}_ct.nii.gz"), "--mask", str(data / f"{pid}_seg.nii.gz"),
                 "--patient-id", pid, "--params", str(data / "light_params.yaml"),
                 "--out", str(data / f"{pid}_radiomics.csv")]) == 0
