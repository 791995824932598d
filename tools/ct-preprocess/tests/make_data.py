"""Regenerate the small fixtures of the ct-preprocess CWL tests (deterministic; run from the repo root).

    .venv/bin/python tools/ct-preprocess/tests/make_data.py
"""

import importlib.util
import shutil
from pathlib import Path

import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# The synthetic CT and the DICOM writer live with the unit tests; load them rather than copy them.
spec = importlib.util.spec_from_file_location("test_preprocess", REPO / "tests" / "unit" / "test_preprocess.py")
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)

data = HERE / "data"
shutil.rmtree(data, ignore_errors=True)
data.mkdir()
image = helpers.ct_volume(size=(16, 12, 6), spacing=(0.8, 0.8, 2.5))
sitk.WriteImage(image, str(data / "ct.nrrd"))
sitk.WriteImage(helpers.label_map(image), str(data / "labels.nrrd"))
helpers.write_dicom_series(data / "dicom", image, "1.2.826.0.1.3680043.2.1125.100")
helpers.write_dicom_series(data / "dicom_two_series", image, "1.2.826.0.1.3680043.2.1125.101")
helpers.write_dicom_series(data / "dicom_two_series", helpers.ct_volume(size=(16, 12, 4), origin=(0.0, 0.0, 300.0)),
                           "1.2.826.0.1.3680043.2.1125.102")
helpers.write_dicom_series(data / "dicom_missing_slice", image, "1.2.826.0.1.3680043.2.1125.103", skip=(3,))
