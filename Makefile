# gcmlm: one entry point for setup, demo, tests, lint, images and benchmarks.
# Every target creates the virtual environment first, so each works on a fresh clone.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
PY := $(abspath $(VENV))/bin/python
# Toil's and cwltool's workers must find `gcmlm` and `cwltool` on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
DOCKERFILES := $(sort $(wildcard containers/*/Dockerfile))
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=
# Two test processes (CI has 2 cores); tests that need the tiny nnU-Net share one (tests/unit/conftest.py).
PYTEST_WORKERS ?= -n 2 --dist loadgroup
# CWL tests run the tools from the virtual environment (no containers) unless told otherwise.
CWL_ARGS ?= --no-container

.PHONY: setup demo test test-containers test-cluster lint lint-galaxy galaxy images bench clean help

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision in ONE command: pip must choose a matching pair.
	$(PY) -m pip install -c constraints.txt torch torchvision
	# pyradiomics ships an sdist that needs numpy at build time, without build isolation.
	$(PY) -m pip install -c constraints.txt numpy setuptools wheel versioneer
	$(PY) -m pip install -c constraints.txt --no-build-isolation pyradiomics
	$(PY) -m pip install -c constraints.txt -e '.[radiology,pathology,fusion,demo,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP) ## create .venv and install pinned dependencies

demo: setup ## build the demo cohort and run the full workflow on it with cwltool
	bash scripts/demo.sh $(DEMO_OUT)

test: setup lint-galaxy ## unit tests (Galaxy wrappers: drift, planemo lint, execution), CWL validation and CWL tests (tools run from .venv)
	$(PY) -m pytest tests tools workflows --ignore=tests/cluster --ignore=tests/containers $(PYTEST_WORKERS) $(PYTEST_ARGS) --cwl-runner cwltool --cwl-args="$(CWL_ARGS)"

test-containers: setup ## build the images, run every tool's CWL tests inside its image, then the demo in containers
	bash .ci/containers.sh

lint: setup ## ruff, CWL validation (cwltool --enable-ext --validate, zero warnings, house style), hadolint
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest tests/unit/test_cwl_valid.py -q -p no:cacheprovider
	$(VENV)/bin/hadolint $(DOCKERFILES)

images: setup ## build every stage image with your podman or docker (changes nothing on the host)
	bash containers/build.sh

galaxy: setup ## regenerate the generated files: Galaxy wrappers tools/<stage>/<stage>.xml (from the option contract) and .dockstore.yml
	$(PY) -m gcmlm.galaxy
	$(PY) scripts/make-dockstore-yml.py

# planemo in its own environment (its many dependencies must not move the pinned .venv).
PLANEMO_VENV ?= .venv-planemo
PLANEMO_STAMP := $(PLANEMO_VENV)/.installed-$(shell cat constraints-galaxy.txt | sha1sum | cut -c1-12)

$(PLANEMO_STAMP): constraints-galaxy.txt
	$(PYTHON) -m venv $(PLANEMO_VENV)
	echo '*' > $(PLANEMO_VENV)/.gitignore
	$(PLANEMO_VENV)/bin/pip install -q -c constraints-galaxy.txt planemo
	rm -f $(PLANEMO_VENV)/.installed-*
	touch $@

lint-galaxy: $(PLANEMO_STAMP) ## planemo lint on every Galaxy wrapper, failing on any warning
	$(PLANEMO_VENV)/bin/planemo lint --fail_level warn tools/*/*.xml

test-cluster: setup ## Toil and a local one-node Slurm cluster (needs root; installs slurm-wlm + munge)
	bash .ci/cluster.sh $(PYTEST_ARGS)

bench: setup ## benchmarks against the reference tools, side by side (see benchmarks/README.md)
	bash benchmarks/run.sh

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
