"""Fault tolerance: a Toil run killed mid-way resumes with --restart, does not redo finished jobs,
and ends with the outputs of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from engine_runs import DATA, content_of, cwltool_cmd, engine_env, run_engine, toil_cmd

pytestmark = pytest.mark.cluster  # ~25 s: runs in CI

SCATTER = DATA / "slide-pool-scatter.cwl"
JOBS = 7  # six scattered slide-pool jobs + the cohort job (slide_cohort fixture)
HOLD_AT = 3  # the third job to start is held until the test kills the run

# Every `gcmlm` call of the run goes through this wrapper (first on PATH): it records each job's
# start and end in a ledger outside Toil's job store, and holds the HOLD_AT-th job while the
# hold file exists, so the kill happens at a known point: HOLD_AT - 1 jobs finished, one running.
LEDGER_WRAPPER = """#!/usr/bin/env bash
ledger={ledger}
out=$(printf '%s\\n' "$@" | grep -A1 -x -- --out | tail -n 1)
echo "start $out $(ps -o pgid= -p $$ | tr -d ' ')" >> "$ledger"
if [[ -e {hold} ]] && (( $(grep -c '^start' "$ledger") >= {hold_at} )); then sleep 600; fi
{real} "$@" || exit $?
echo "end $out" >> "$ledger"
"""


def ledger_entries(ledger: Path, kind: str) -> list[str]:
    return [line.split()[1] for line in ledger.read_text().splitlines() if line.startswith(kind + " ")]


def wait_for_starts(ledger: Path, count: int, leader: subprocess.Popen, timeout: float = 300) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = ledger.read_text().splitlines() if ledger.exists() else []
        starts = [line for line in lines if line.startswith("start ")]
        if len(starts) >= count:
            return starts
        if leader.poll() is not None:
            raise AssertionError(f"the Toil run ended ({leader.returncode}) before {count} jobs started")
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} jobs started in {timeout}s")


def test_killed_run_restarts_without_redoing_finished_jobs(slide_cohort, tmp_path):
    real_gcmlm = shutil.which("gcmlm", path=engine_env()["PATH"])
    bindir, ledger, hold = tmp_path / "bin", tmp_path / "ledger.txt", tmp_path / "hold"
    bindir.mkdir()
    wrapper = bindir / "gcmlm"
    wrapper.write_text(LEDGER_WRAPPER.format(ledger=ledger, hold=hold, hold_at=HOLD_AT, real=real_gcmlm))
    wrapper.chmod(0o755)
    env = engine_env(extra_path=[bindir])
    jobstore = tmp_path / "jobstore"
    # One core: jobs run one after another, so when the third starts, two have finished and
    # their workers have written their results to the job store.
    cmd = toil_cmd(jobstore, tmp_path / "out", "single_machine", "--maxCores", "1", str(SCATTER), str(slide_cohort))

    hold.touch()
    leader = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "first.log", "w"), start_new_session=True
    )
    try:
        held = wait_for_starts(ledger, HOLD_AT, leader)[-1]
    finally:
        # Kill the leader and the held job (each Toil worker has its own process group) at once,
        # as a crash or a node failure would: no chance to clean up.
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()
        if ledger.exists():
            for line in ledger.read_text().splitlines():
                if line.startswith("start "):
                    try:
                        os.killpg(int(line.split()[2]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    finished_before = ledger_entries(ledger, "end")
    assert len(finished_before) == HOLD_AT - 1
    held_output = held.split()[1]
    assert held_output not in finished_before

    hold.unlink()
    ledger.write_text(ledger.read_text() + "restart\n")
    outputs = run_engine(cmd[:1] + ["--restart"] + cmd[1:], env=env)

    after = ledger.read_text().split("restart\n", 1)[1]
    rerun = [line.split()[1] for line in after.splitlines() if line.startswith("start ")]
    # Finished jobs were taken from the job store; the killed one and those never started ran now.
    assert not set(rerun) & set(finished_before), rerun
    assert held_output in rerun
    assert len(rerun) == JOBS - len(finished_before)
    assert sorted(ledger_entries(ledger, "end")) == sorted(set(ledger_entries(ledger, "end")))
    assert len(ledger_entries(ledger, "end")) == JOBS

    reference = run_engine(cwltool_cmd(tmp_path / "reference", str(SCATTER), str(slide_cohort)))
    assert content_of(outputs) == content_of(reference)
