"""Write the attention fixture of the mil-heatmap cwltests: mil-predict's attention for the held-out
positive slide P33-A (run the make_data.py of mil-train, then of mil-predict, first)."""

import shutil
import tempfile
from pathlib import Path

from gcmlm.pathology.mil_predict import predict_files, write_predictions

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1]
SLIDE = "P33-A"

if __name__ == "__main__":
    data = TOOLS / "mil-train" / "tests" / "data"
    result = predict_files(TOOLS / "mil-predict" / "tests" / "data" / "model", [data / f"{SLIDE}.h5"],
                           device="cpu", threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        write_predictions(result, Path(tmp) / "risk.csv", attention_dir=Path(tmp) / "attention")
        shutil.copy(Path(tmp) / "attention" / f"{SLIDE}.h5", HERE / "data" / f"{SLIDE}.h5")
