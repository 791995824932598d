"""scripts/demo_times.py: the per-stage table `make demo` prints at its end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_times.py"

# What cwltool writes to stderr for one scattered step with two jobs (the shape `run --log` records).
CWLTOOL_STDERR = """\
import sys, time
def say(text):
    print(text, file=sys.stderr, flush=True)
say("INFO [step tile] start")
say("INFO [job tile] /tmp/x$ gcmlm wsi-tile --slide a.tiff")
time.sleep(0.3)
say("INFO [job tile] completed success")
say("INFO [job tile_2] /tmp/y$ gcmlm wsi-tile --slide b.tiff")
time.sleep(0.3)
say("INFO [job tile_2] completed success")
say("INFO [step tile] completed success")
print("outputs on stdout")
"""


def test_run_records_the_step_and_report_prints_per_stage_times(tmp_path):
    record, log = tmp_path / "times.tsv", tmp_path / "gc-mlm.log"
    run = subprocess.run([sys.executable, SCRIPT, "run", "--label", "workflow", "--record", record, "--log", log,
                          "--", sys.executable, "-c", CWLTOOL_STDERR], capture_output=True, text=True, check=True)
    assert run.stdout == "outputs on stdout\n"  # stdout passes through untouched
    label, wall, user, system = record.read_text().strip().split("\t")
    assert label == "workflow" and float(wall) >= 0.6 and float(user) >= 0 and float(system) >= 0
    report = subprocess.run([sys.executable, SCRIPT, "report", record, log], capture_output=True, text=True,
                            check=True).stdout
    assert "workflow" in report and "total" in report
    [tile] = [line.split() for line in report.splitlines() if line.strip().startswith("tile")]
    assert tile[1] == "2"  # two tool runs of the step
    assert float(tile[2]) >= 0.6 and 0.5 <= float(tile[3]) <= float(tile[2])  # span, summed tool time
