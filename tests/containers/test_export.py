"""containers/export.sh: an offline archive that loads back into a fresh image store and runs."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

import gcmlm

STAGE = os.environ.get("GCMLM_EXPORT_STAGE", "slide-pool")


@pytest.mark.slow
@pytest.mark.container
def test_export_loads_back_and_runs(engine, image_of, repo, tmp_path):
    if engine.command != "podman":
        pytest.skip("loading into an isolated image store needs podman")  # docker has one store
    image = engine.require(image_of(STAGE))
    out = tmp_path / "images"
    subprocess.run(["bash", str(repo / "containers" / "export.sh"), "--out", str(out), STAGE],
                   env=engine.env, check=True, capture_output=True, text=True)

    with open(out / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["image"] for r in rows] == [image]
    archive = out / rows[0]["archive"]
    assert archive.stat().st_size == int(rows[0]["bytes"])
    digest = hashlib.sha256()
    with open(archive, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    assert digest.hexdigest() == rows[0]["sha256"]
    assert rows[0]["sif"] == f"ghcr.io_s_gcmlm_s_{STAGE}:{gcmlm.__version__}.sif"

    # A separate, empty image store stands in for the cluster: load, then run by name offline.
    # (podman limits the runroot path to 50 characters, so it lives directly under /tmp.)
    runroot = tempfile.mkdtemp(prefix="gcmlm-run-", dir="/tmp")
    isolated = ["--root", str(tmp_path / "store"), "--runroot", runroot]
    try:
        loaded = engine.run(*isolated, "load", "--input", str(archive))
        assert image in loaded.stdout
        ran = engine.run(*isolated, "run", "--rm", "--network", "none", "--user", "4242:4242",
                         image, "gcmlm", "--version")
        assert ran.stdout.split() == ["gcmlm", gcmlm.__version__]
    finally:
        # Layers are mounted and owned by root: let podman take its store apart.
        engine.run(*isolated, "system", "reset", "--force", check=False)
        shutil.rmtree(runroot, ignore_errors=True)
