#!/usr/bin/env bash
# The main job: demo cohort -> nnU-Net training workflow -> the whole gc-mlm workflow, with cwltool.
# Usage: scripts/demo.sh [OUT_DIR]   (make demo; the tools run from .venv, CWL_ARGS adds cwltool flags,
#        DEMO_SET="name=value ..." adds gc-mlm workflow inputs, e.g. DEMO_SET="radiomics_label=1")
set -euo pipefail
out=${1:-demo-out}
patients=${DEMO_PATIENTS:-40}
train_cases=${DEMO_TRAIN_CASES:-8}
cwl_args=${CWL_ARGS:---no-container}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
step() { printf '\n== %s\n' "$*"; }

step "1/4 demo cohort: $patients patients -> $out/cohort"
gcmlm demo-cohort --out "$out/cohort" --patients "$patients" --seed 0

step "2/4 nnU-Net training workflow (tiny plans, CPU) on the first $train_cases labelled CTs"
gcmlm jobs radiology-train --manifest "$out/cohort/manifest.csv" --first "$train_cases" \
  --out "$out/radiology-train.job.yml" \
  --set use_gpu=false --set dataset_id=501 --set dataset_name=GastricDemo --set tiny=true \
  --set trainer=nnUNetTrainerNoDA \
  --set epochs="${DEMO_EPOCHS:-50}" --set iterations_per_epoch="${DEMO_ITERATIONS:-24}" --set val_iterations=2
# --enable-ext: the workflows' GPU steps carry the cwltool:CUDARequirement extension (cwltool warns
# about it otherwise, even with use_gpu=false).
# shellcheck disable=SC2086
cwltool --enable-ext $cwl_args --outdir "$out/model" "$repo/workflows/radiology-train.cwl" "$out/radiology-train.job.yml" \
  > "$out/radiology-train.outputs.json"
model=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["path"])' "$out/radiology-train.outputs.json")

step "3/4 whole workflow gc-mlm.cwl (radiology + pathology + fusion)"
extra_set=()
for pair in ${DEMO_SET:-}; do extra_set+=(--set "$pair"); done
gcmlm jobs gc-mlm --manifest "$out/cohort/manifest.csv" --clinical "$out/cohort/clinical.csv" \
  --model "$model" --out "$out/gc-mlm.job.yml" \
  --set use_gpu=false --set tiling_preset=bwh_biopsy --set encoder="${DEMO_ENCODER:-resnet18}" --set allow_random_weights=true \
  --set embed_batch_size=32 --set outer_repeats="${DEMO_OUTER_REPEATS:-2}" --set tuning=fast --set seed=0 \
  "${extra_set[@]}"
# A CWLProv research object of this run (inputs, outputs, packed workflow, PROV graph) in
# $out/provenance (cwltool replaces the previous run's); DEMO_PROVENANCE=0 leaves it out.
prov=()
if [[ ${DEMO_PROVENANCE:-1} != 0 ]]; then
  prov=(--provenance "$out/provenance")
fi
# shellcheck disable=SC2086
cwltool --enable-ext $cwl_args "${prov[@]}" --outdir "$out/results" "$repo/workflows/gc-mlm.cwl" "$out/gc-mlm.job.yml" \
  > "$out/gc-mlm.outputs.json"

step "4/4 results"
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
outputs = json.loads((out / "gc-mlm.outputs.json").read_text())
metrics = json.loads((Path(outputs["fusion_outputs"]["path"]) / "model" / "metrics.json").read_text())
print("nested-CV AUC (95% CI) on the demo cohort:")
for name, m in metrics["models"].items():
    if isinstance(m, dict) and "auc" in m:
        low, high = m["auc_ci95"]
        print(f"  {name:8s} {m['auc']:.3f} ({low:.3f}-{high:.3f})")
print(f"\nmodel report: {Path(outputs['fusion_outputs']['path']) / 'model' / 'report.html'}")
print(f"all outputs: {out / 'results'} (radiology/, pathology/, fusion/)")
print(f"run report (open in a browser): {outputs['index_html']['path']}")
if (out / "provenance" / "bagit.txt").is_file():
    print(f"provenance (CWLProv bag): {out / 'provenance'}")
PY
