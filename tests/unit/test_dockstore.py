""".dockstore.yml registers every tool and workflow with existing test jobs, and is up to date with
scripts/make-dockstore-yml.py (a unit test, so `make test` catches a stale file before CI's cluster half)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_dockstore_yml_registers_everything():
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-dockstore-yml.py"), "--check"],
        capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stderr
    config = yaml.safe_load((REPO / ".dockstore.yml").read_text())
    assert config["version"] == 1.2
    registered = {e["primaryDescriptorPath"] for e in config["tools"] + config["workflows"]}
    expected = {"/" + p.relative_to(REPO).as_posix() for p in [*REPO.glob("tools/*/*.cwl"), *REPO.glob("workflows/*.cwl")]}
    assert registered == expected
    for item in config["tools"] + config["workflows"]:
        assert item["subclass"] == "CWL"
        for job in item["testParameterFiles"]:
            assert (REPO / job.lstrip("/")).is_file(), job
    # slide-pool's passing cwltest job is registered, its should_fail job is not.
    (slide_pool,) = [t for t in config["tools"] if t["name"] == "slide-pool"]
    assert slide_pool["testParameterFiles"] == ["/tools/slide-pool/tests/slide-pool.job.yml"]
