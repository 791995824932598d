#!/usr/bin/env bash
# `make bench`: every benchmark whose reference is available, side by side with that reference.
# References are given by path and never committed:
#   CLAM_DIR=...        a CLAM checkout (tiling, embedding)
#   RADMLBENCH_DIR=...  radMLBench's datasets folder (fusion vs published WORC AUCs)
#   NNUNET_MODEL=... NNUNET_IMAGES="a.nii.gz b.nii.gz"  a model zip and CTs (nnunet-predict vs nnUNetv2_predict)
# PyRadiomics, cwltool and Toil come with .venv, so those benchmarks always run.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=${BENCH_WORKDIR:-/tmp/gcmlm-bench}
mkdir -p "$work"
status=0
run() { echo; echo "### $1"; shift; "$@" || status=1; }
skip() { echo; echo "### $1: skipped ($2)"; }

run "radiomics-extract vs PyRadiomics" $py benchmarks/radiomics/bench_radiomics.py --patients 3 --repeats 3
if [[ -n ${CLAM_DIR:-} ]]; then
  run "wsi-tile vs CLAM create_patches_fp" $py benchmarks/tiling/bench_tiling.py --workdir "$work/tiling" --synthetic 3
  run "patch-embed data path vs CLAM Whole_Slide_Bag_FP" $py benchmarks/embedding/bench_embedding.py --workdir "$work/embedding"
else
  skip "tiling and embedding vs CLAM" "set CLAM_DIR to a CLAM checkout"
fi
if [[ -n ${NNUNET_MODEL:-} && -n ${NNUNET_IMAGES:-} ]]; then
  # shellcheck disable=SC2086
  run "nnunet-predict vs nnUNetv2_predict" $py benchmarks/nnunet/bench_predict.py --model "$NNUNET_MODEL" --images $NNUNET_IMAGES --device cpu
else
  skip "nnunet-predict vs nnUNetv2_predict" "set NNUNET_MODEL (zip) and NNUNET_IMAGES (e.g. from make demo)"
fi
if [[ -n ${RADMLBENCH_DIR:-} ]]; then
  run "fusion-train vs published WORC AUCs" $py benchmarks/fusion/radmlbench_worc.py --outer-repeats 2 -- --tuning fast --k-features 10 20
else
  skip "fusion-train vs published AUCs" "set RADMLBENCH_DIR to radMLBench's datasets folder"
fi
run "engines: cwltool, --parallel, Toil single_machine (and Slurm if up)" $py benchmarks/engines/bench_engines.py --slides 6
exit $status
