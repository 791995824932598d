#!/usr/bin/env bash
# Pack every workflow into one self-contained CWL document (build/packed/<name>.cwl) for engines
# and registries that take a single file (Arvados, Dockstore, Galaxy's CWL import, WorkflowHub),
# then check each packed file stands alone:
#   1. `cwltool --enable-ext --validate` of a copy in an empty folder passes with zero warnings
#      (no path back to tools/ survives packing);
#   2. cwl-utils' parser (schema-salad codegen) loads its whole $graph, and every step runs a
#      process of that same document.
# Usage: scripts/pack-workflows.sh [WORKFLOW.cwl ...]   (default: workflows/*.cwl)
#        PACKED_DIR=... to write elsewhere than build/packed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
out=${PACKED_DIR:-$repo/build/packed}
if [[ $# -eq 0 ]]; then
  shopt -s nullglob
  set -- "$repo"/workflows/*.cwl
  shopt -u nullglob
  if [[ $# -eq 0 ]]; then echo "pack-workflows: no workflows in $repo/workflows" >&2; exit 1; fi
fi
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for wf in "$@"; do
  name=$(basename "$wf")
  packed="$out/$name"
  if ! cwltool --enable-ext --pack "$wf" >"$packed.tmp" 2>"$scratch/pack.log"; then
    echo "FAIL $name: cwltool --pack"; sed 's/^/    /' "$scratch/pack.log"; rm -f "$packed.tmp"; status=1; continue
  fi
  mv "$packed.tmp" "$packed"
  mkdir -p "$scratch/alone" && cp "$packed" "$scratch/alone/$name"
  log=$(cd "$scratch/alone" && cwltool --enable-ext --validate "$name" 2>&1) || {
    echo "FAIL $name: packed file does not validate"; sed 's/^/    /' <<<"$log"; status=1; continue
  }
  if grep -qE "WARNING|Warning" <<<"$log"; then
    echo "FAIL $name: packed file validates with warnings"; grep -vE "INFO" <<<"$log" | sed 's/^/    /'; status=1; continue
  fi
  if ! python - "$scratch/alone/$name" <<'PY'
import sys
from pathlib import Path

from cwl_utils.parser import load_document_by_uri

path = Path(sys.argv[1]).resolve()
graph = load_document_by_uri(path, load_all=True)
graph = graph if isinstance(graph, list) else [graph]
ids = {process.id for process in graph}


def check(process) -> int:
    """Every step runs a process of this same document (by id) or an inline one; returns steps."""
    count = 0
    for step in getattr(process, "steps", None) or []:
        count += 1
        if isinstance(step.run, str):
            if step.run not in ids:
                sys.exit(f"step {step.id} runs {step.run!r}, which is not in the packed document")
        else:
            count += check(step.run)
    return count


steps = sum(check(process) for process in graph)
main = next(p for p in graph if p.id.endswith("#main"))
print(f"     cwl-utils: {type(main).__name__} {main.cwlVersion}, {len(graph)} processes, {steps} steps")
PY
  then
    echo "FAIL $name: cwl-utils cannot load it"; status=1; continue
  fi
  echo "ok   $name -> ${packed#"$repo"/}"
done
exit $status
