"""Fixtures for the image tests: the container engine and the built stage images.

Tests that need an engine or a built image skip when there is none (plain `make test` on a machine
without podman); with GCMLM_REQUIRE_IMAGES=1 (set by `make test-containers` and CI) they fail
instead, so a missing image can never pass silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import gcmlm

REPO = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("REGISTRY", "ghcr.io/gcmlm")


def image_name(stage: str) -> str:
    return f"{REGISTRY}/{stage}:{gcmlm.__version__}"


def _unavailable(reason: str):
    if os.environ.get("GCMLM_REQUIRE_IMAGES") == "1":
        pytest.fail(f"{reason} (GCMLM_REQUIRE_IMAGES=1)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Engine:
    command: str
    env: dict

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([self.command, *args], env=self.env, capture_output=True, text=True,
                              check=check, timeout=timeout)

    def inspect(self, image: str) -> dict:
        return json.loads(self.run("image", "inspect", image).stdout)[0]

    def require(self, image: str) -> str:
        if self.run("image", "inspect", image, check=False).returncode != 0:
            _unavailable(f"image {image} is not built: run containers/build.sh")
        return image


@pytest.fixture(scope="session")
def image_of():
    """The image name of a stage, as its CWL tool pulls it."""
    return image_name


@pytest.fixture(scope="session")
def engine() -> Engine:
    env = dict(os.environ)
    name = os.environ.get("ENGINE") or ("podman" if shutil.which("podman") else "docker")
    if name == "podman":
        env.setdefault("CONTAINERS_CONF", str(REPO / "containers" / "containers.conf"))
    if not shutil.which(name) or subprocess.run([name, "info"], env=env, capture_output=True).returncode:
        _unavailable(f"no working container engine ({name}): run scripts/setup-podman.sh")
    return Engine(name, env)
