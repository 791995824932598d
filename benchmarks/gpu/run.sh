#!/usr/bin/env bash
# The whole GPU check in one call: patch-embed end to end (ViT-L/16, UNI's architecture) on a synthetic
# 50k x 40k slide, the model alone, nnU-Net predict on CUDA, CUDA/CPU feature agreement -> one JSON.
#
#   benchmarks/gpu/run.sh [--out results.json] [--checkpoint uni.bin] [--dry-run] [gpu_bench.py options]
#
# Runs from the repository root with what is already there; it installs nothing and downloads nothing.
# Python: $GCMLM_PYTHON, else .venv/bin/python, else python3 (a machine's own torch environment).
# Wheels the machine lacks (nnunetv2, openslide-bin, SimpleITK, ...) can be carried in .whl/ (see
# benchmarks/gpu/README.md): when .whl/ holds wheels they are unpacked to a temporary folder, offline.
# Results: --out (default $OUT/gpu-results.json where $OUT is set, else benchmarks/gpu/results.json).
set -euo pipefail
cd "$(dirname "$0")/../.."

py=${GCMLM_PYTHON:-}
if [[ -z $py ]]; then
  if [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
fi

if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d /tmp/gcmlm-gpu-site.XXXXXX)
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
# gcmlm itself from this checkout, whether or not the environment has it installed.
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

out=benchmarks/gpu/results.json
[[ -z ${OUT:-} ]] || out=$OUT/gpu-results.json
case " $* " in *" --out "* | *" --out="*) ;; *) set -- "$@" --out "$out" ;; esac
exec "$py" benchmarks/gpu/gpu_bench.py "$@"
