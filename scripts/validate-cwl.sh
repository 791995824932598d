#!/usr/bin/env bash
# Validate CWL files with cwltool; any warning counts as a failure.
set -uo pipefail
status=0
for f in "$@"; do
  out=$(cwltool --enable-ext --validate "$f" 2>&1)
  if [[ $? -ne 0 ]] || grep -qE "WARNING|Warning" <<<"$out"; then
    echo "FAIL $f"; grep -vE "^(INFO|\S*INFO)" <<<"$out" | sed 's/^/    /'; status=1
  else
    echo "ok   $f"
  fi
done
exit $status
