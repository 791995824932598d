"""Write the model fixture of the mil-predict cwltests: mil-train on P00-P31 of mil-train's synthetic
bags (run tools/mil-train/tests/make_data.py first; deterministic on the CPU with one thread)."""

import importlib.util
import shutil
from pathlib import Path

from gcmlm.pathology.core.mil import MILConfig
from gcmlm.pathology.mil_train import train_mil

HERE = Path(__file__).resolve().parent
TRAIN_DATA = HERE.parents[1] / "mil-train" / "tests"
CONFIG = MILConfig(lr=1e-3, max_epochs=20)


def bags_module():
    spec = importlib.util.spec_from_file_location("mil_bags", TRAIN_DATA / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    bags = bags_module()
    out = HERE / "data" / "model"
    shutil.rmtree(out, ignore_errors=True)
    train_mil(bags.slide_files(0, bags.N_TRAIN - 1), bags.DATA / "labels.csv", "mlm", out,
              slide_map=bags.DATA / "slide_map.csv", config=CONFIG, seed=0, device="cpu", threads=1)
