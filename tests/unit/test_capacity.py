"""benchmarks/capacity.py: the sizing tables of docs/cluster.md, from measured costs and GPU results."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest


@pytest.fixture(scope="module")
def capacity(repo):
    spec = importlib.util.spec_from_file_location("capacity", repo / "benchmarks" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_without_gpu_results_gpu_cells_say_not_measured(capacity, capsys):
    assert capacity.main(["--results"]) == 0
    table = capsys.readouterr().out
    assert "### 1,000 patients" in table and "### 10,000 patients" in table
    assert "| wsi-tile | 2,000 slides |" in table and "CPU, measured here" in table
    assert "GPU: not measured" in table and "GPU, measured" not in table
    assert "wall h, 16 nodes" in table and "| total |" in table


def test_a_gpu_results_json_replaces_not_measured(capacity, tmp_path, capsys):
    gpu = {"device": "cuda", "dry_run": False,
           "patch_embed": {"patches_per_second": {"value": 2600.0, "unit": "patches/s"}},
           "nnunet_predict": {"cuda": {"seconds_per_case": {"value": 0.5, "unit": "s/case"}}}}
    dry = {**gpu, "device": "cpu", "dry_run": True}
    (tmp_path / "results.json").write_text(json.dumps(gpu))
    (tmp_path / "results-dry.json").write_text(json.dumps(dry))
    assert capacity.main(["--results", str(tmp_path / "results-dry.json"), str(tmp_path / "results.json"),
                          "--cohorts", "1000"]) == 0
    table = capsys.readouterr().out
    assert "GPU: not measured" not in table and "GPU, measured" in table
    # 1,000 patients x 2 slides x 13,000 patches at 2,600 patches/s = 2.78 GPU-hours
    assert "| patch-embed on GPU (UNI) | 26,000,000 patches | 10.6 | 2.78 |" in table


def test_wall_time_is_set_by_the_busier_resource(capacity):
    node = capacity.Node(cores=32, gpus=1)
    assert capacity.wall_hours(320.0, 5.0, 1, node) == 10.0
    assert capacity.wall_hours(32.0, 8.0, 4, node) == 2.0
    assert capacity.wall_hours(32.0, None, 4, node) is None
