"""The built images: labels, any user id, no network, read-only root, nothing downloaded inside."""

from __future__ import annotations

import pytest

import gcmlm
from gcmlm.stages import STAGES

STAGE_NAMES = [s.name for s in STAGES]
SUMMARY = {s.name: s.summary for s in STAGES}
BRANCHES = sorted({s.branch for s in STAGES})
# How cwltool (and a careful user) runs a tool: an arbitrary uid with no passwd entry, no network,
# and an immutable image (podman's --read-only keeps a fresh tmpfs on /tmp).
LOCKED_DOWN = ["run", "--rm", "--user", "54321:54321", "--network", "none", "--read-only"]


@pytest.mark.container
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_image_labels(engine, image_of, stage):
    labels = engine.inspect(engine.require(image_of(stage)))["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == f"gcmlm-{stage}"
    assert labels["org.opencontainers.image.description"] == SUMMARY[stage]
    assert labels["org.opencontainers.image.version"] == gcmlm.__version__
    assert labels["org.opencontainers.image.source"] == "https://github.com/gcmlm/gcmlm"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert len(labels["org.opencontainers.image.revision"].split("-")[0]) == 40  # a git commit


@pytest.mark.container
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_runs_as_any_user_offline(engine, image_of, stage):
    image = engine.require(image_of(stage))
    result = engine.run(*LOCKED_DOWN, image, "gcmlm", stage, "--help", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: gcmlm {stage}")
    assert "Traceback" not in result.stderr


@pytest.mark.container
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_image_has_no_entrypoint_and_helps_by_default(engine, image_of, stage):
    image = engine.require(image_of(stage))
    assert not engine.inspect(image)["Config"].get("Entrypoint")  # CWL's baseCommand runs as is
    result = engine.run(*LOCKED_DOWN, image, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: gcmlm {stage}")


SCAN = r"""
import os, sys
# Checkpoints (torch, timm/UNI, nnU-Net model zips) and imaging or feature data. Libraries' own
# test fixtures (scipy, pywt ship .npz files under tests/) are not ours to judge.
weights = ('.pt', '.pth', '.ckpt', '.safetensors', '.onnx', '.zip', '.h5', '.nii', '.nii.gz', '.nrrd',
           '.mha', '.dcm', '.svs', '.ndpi', '.mrxs', '.tif', '.tiff')
roots = ['/tmp', '/root', '/home', '/opt', '/srv', '/data']
roots += [p for p in sys.path if p.endswith('-packages')]
found = []
for root in roots:
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if f.endswith(weights) and os.path.getsize(p) > 1_000_000 and '/tests/' not in p:
                found.append(p)
print('\n'.join(found))
"""


@pytest.mark.container
@pytest.mark.parametrize("branch", BRANCHES)
def test_runtime_holds_no_weights_or_data(engine, image_of, branch):
    """No model weights, hub caches or cohort data baked in: they come in as CWL inputs."""
    image = engine.require(image_of(f"runtime-{branch}"))
    result = engine.run(*LOCKED_DOWN, image, "python3", "-c", SCAN)
    assert result.stdout.split() == []


@pytest.mark.container
@pytest.mark.parametrize("branch", BRANCHES)
def test_runtime_writes_caches_under_tmp_as_any_user(engine, image_of, branch):
    """Libraries that write a config or cache at import (matplotlib, torch) find a writable home."""
    image = engine.require(image_of(f"runtime-{branch}"))
    probe = ("import os, pathlib, tempfile; "
             "[pathlib.Path(os.environ[k]).mkdir(parents=True, exist_ok=True) for k in "
             "('HOME', 'XDG_CACHE_HOME', 'MPLCONFIGDIR', 'TORCH_HOME', 'HF_HOME')]; "
             "tempfile.NamedTemporaryFile(dir=os.environ['MPLCONFIGDIR']).close(); print(os.getuid())")
    result = engine.run(*LOCKED_DOWN, image, "python3", "-c", probe, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "54321"
