"""The `gcmlm` command: every stage listed, unknown or unbuilt stages fail clearly."""

import subprocess
import sys

from gcmlm.cli import main
from gcmlm.stages import STAGES

EXPECTED = [
    "ct-preprocess", "nnunet-dataset", "nnunet-plan", "nnunet-train", "nnunet-predict",
    "radiomics-extract", "wsi-tile", "patch-embed", "slide-pool", "mil-train", "mil-predict", "mil-heatmap",
    "fusion-merge", "fusion-train",
    "fusion-evaluate", "fusion-predict", "run-report", "demo-cohort",
]


def test_registry_has_every_stage_once():
    assert [s.name for s in STAGES] == EXPECTED


def test_help_lists_every_stage_with_its_summary():
    out = subprocess.run([sys.executable, "-m", "gcmlm", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    for stage in STAGES:
        assert stage.name in out
        assert " ".join(stage.summary.split()[:4]) in flat


def test_help_lists_the_utilities_apart_from_the_stages():
    out = subprocess.run([sys.executable, "-m", "gcmlm", "--help"], capture_output=True, text=True, check=True).stdout
    stages, _, utilities = out.partition("utilities (no CWL tool, no image):")
    assert utilities.split()[0] == "jobs" and " jobs " not in stages


def test_every_stage_module_imports_and_has_the_stage_interface():
    import importlib

    for stage in STAGES:
        module = importlib.import_module(stage.module)
        assert callable(module.add_arguments) and callable(module.run), stage.name


def test_stage_help_exits_zero(capsys):
    try:
        main(["slide-pool", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "--features" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["slide-pool", "--features", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == f"gcmlm slide-pool: error: {tmp_path / 'missing.h5'}: no such file"
    assert not (tmp_path / "t.csv").exists()
