#!/usr/bin/env bash
# The main job: demo cohort -> nnU-Net training workflow -> the whole gc-mlm workflow, with cwltool.
# Usage: scripts/demo.sh [OUT_DIR]   (make demo; the tools run from .venv, CWL_ARGS adds cwltool flags,
#        DEMO_SET="name=value ..." adds gc-mlm workflow inputs, e.g. DEMO_SET="radiomics_label=1";
#        DEMO_SLIDE_MODEL=mean runs without attention MIL (default abmil);
#        DEMO_PROVENANCE=0 leaves out the provenance bag and runs jobs side by side, DEMO_PARALLEL=0 does not)
# Ends with the time of each step (wall and CPU) and of each workflow step, from the logs in OUT_DIR/logs.
set -euo pipefail
out=${1:-demo-out}
patients=${DEMO_PATIENTS:-40}
train_cases=${DEMO_TRAIN_CASES:-8}
cwl_args=${CWL_ARGS:---no-container}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
step() { printf '\n== %s\n' "$*"; }
# timed LABEL LOG COMMAND...: runs COMMAND, records its wall and CPU seconds in $times and, with a
# LOG, copies its stderr (the cwltool log) there for the per-stage table at the end.
times="$out/logs/times.tsv"
mkdir -p "$out/logs"
rm -f "$times"
timed() {
  local label=$1 log=$2
  shift 2
  python "$repo/scripts/demo_times.py" run --label "$label" --record "$times" ${log:+--log "$log"} -- "$@"
}

step "1/4 demo cohort: $patients patients -> $out/cohort"
timed "1 demo cohort" "" gcmlm demo-cohort --out "$out/cohort" --patients "$patients" --seed 0

step "2/4 nnU-Net training workflow (tiny plans, CPU) on the first $train_cases labelled CTs"
gcmlm jobs radiology-train --manifest "$out/cohort/manifest.csv" --first "$train_cases" \
  --out "$out/radiology-train.job.yml" \
  --set use_gpu=false --set dataset_id=501 --set dataset_name=GastricDemo --set tiny=true \
  --set trainer=nnUNetTrainerNoDA \
  --set epochs="${DEMO_EPOCHS:-50}" --set iterations_per_epoch="${DEMO_ITERATIONS:-24}" --set val_iterations=2
# --enable-ext: the workflows' GPU steps carry the cwltool:CUDARequirement extension (cwltool warns
# about it otherwise, even with use_gpu=false).
# shellcheck disable=SC2086
timed "2 nnU-Net training" "$out/logs/radiology-train.log" \
  cwltool --enable-ext $cwl_args --outdir "$out/model" "$repo/workflows/radiology-train.cwl" "$out/radiology-train.job.yml" \
  > "$out/radiology-train.outputs.json"
model=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["path"])' "$out/radiology-train.outputs.json")

# The fusion runs twice: the binary MLM outcome and, with time_column/event_column, time to MLM
# (Cox models, C-index, Kaplan-Meier; results/fusion/survival/). slide_model=abmil adds attention MIL
# (docs/workflows.md): a model on every patient with heatmaps of the 4 highest-risk slides
# (results/pathology/{mil,attention,heatmaps}/, in the run report) and path_mil, trained inside
# fusion-train's nested CV. DEMO_SLIDE_MODEL=mean leaves MIL out.
step "3/4 whole workflow gc-mlm.cwl (radiology + pathology + fusion)"
extra_set=()
for pair in ${DEMO_SET:-}; do extra_set+=(--set "$pair"); done
gcmlm jobs gc-mlm --manifest "$out/cohort/manifest.csv" --clinical "$out/cohort/clinical.csv" \
  --model "$model" --out "$out/gc-mlm.job.yml" \
  --set use_gpu=false --set tiling_preset=bwh_biopsy --set encoder="${DEMO_ENCODER:-resnet18}" --set allow_random_weights=true \
  --set embed_batch_size=32 --set outer_repeats="${DEMO_OUTER_REPEATS:-2}" --set tuning=fast --set seed=0 \
  --set time_column=mlm_time_months --set event_column=mlm_event --set time_unit=months \
  --set "horizons=[12, 24, 36]" --set slide_model="${DEMO_SLIDE_MODEL:-abmil}" \
  "${extra_set[@]}"
# A CWLProv research object of this run (inputs, outputs, packed workflow, PROV graph) in
# $out/provenance (cwltool replaces the previous run's); DEMO_PROVENANCE=0 leaves it out.
prov=()
if [[ ${DEMO_PROVENANCE:-1} != 0 ]]; then
  prov=(--provenance "$out/provenance")
fi
# --parallel: cwltool runs the per-patient and per-slide jobs side by side as far as the tools'
# ResourceRequirement (cores, RAM) allow: two 1-core jobs at a time on 2 cores, and the radiology and
# pathology branches together. Each job is a fresh process, so this only changes when it runs.
# Only without the provenance bag: cwltool's CWLProv leaves out every job's record under --parallel
# (cwltool issue 1348). And only where 8 GiB RAM is free: under --parallel cwltool refuses a job that
# asks for more than is free (patch-embed asks 8 GiB).
parallel=()
free_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || true)
if [[ ${DEMO_PARALLEL:-1} != 0 && ${#prov[@]} == 0 && ${free_kib:-0} -ge $((8 * 1024 * 1024)) ]]; then
  parallel=(--parallel)
  echo "cwltool --parallel: jobs side by side (DEMO_PARALLEL=0: one at a time)"
fi
# shellcheck disable=SC2086
timed "3 gc-mlm workflow" "$out/logs/gc-mlm.log" \
  cwltool --enable-ext $cwl_args "${parallel[@]}" "${prov[@]}" --outdir "$out/results" "$repo/workflows/gc-mlm.cwl" "$out/gc-mlm.job.yml" \
  > "$out/gc-mlm.outputs.json"

step "4/4 results"
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
outputs = json.loads((out / "gc-mlm.outputs.json").read_text())
fusion = Path(outputs["fusion_outputs"]["path"])
metrics = json.loads((fusion / "model" / "metrics.json").read_text())
survival_file = fusion / "survival" / "metrics.json"
survival = json.loads(survival_file.read_text())["models"] if survival_file.is_file() else {}
print("nested-CV AUC" + (" and Harrell's C-index of time to MLM" if survival else "") + " (95% CI) on the demo cohort:")
for name, m in metrics["models"].items():
    if isinstance(m, dict) and "auc" in m:
        low, high = m["auc_ci95"]
        line = f"  {name:8s} AUC {m['auc']:.3f} ({low:.3f}-{high:.3f})"
        c = survival.get(name, {})
        if "harrell_c" in c:
            line += f"   C {c['harrell_c']:.3f} ({c['harrell_c_ci95'][0]:.3f}-{c['harrell_c_ci95'][1]:.3f})"
        print(line)
print(f"\nmodel report: {fusion / 'model' / 'report.html'}")
if survival:
    print(f"time-to-event report (Kaplan-Meier, AUC(t)): {fusion / 'survival' / 'report.html'}")
heatmaps = sorted((fusion.parent / "pathology" / "heatmaps").glob("*_heatmap.png"))
if heatmaps:
    print(f"MIL attention heatmaps ({len(heatmaps)} slides of highest MIL risk, with QuPath GeoJSON): "
          f"{heatmaps[0].parent}")
print(f"all outputs: {out / 'results'} (radiology/, pathology/, fusion/)")
print(f"run report (open in a browser): {outputs['index_html']['path']}")
if (out / "provenance" / "bagit.txt").is_file():
    print(f"provenance (CWLProv bag): {out / 'provenance'}")
PY

step "time per step (wall and CPU seconds; 'tool s' adds up the step's jobs)"
python "$repo/scripts/demo_times.py" report "$times" "$out/logs/radiology-train.log" "$out/logs/gc-mlm.log"
