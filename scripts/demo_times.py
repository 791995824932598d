#!/usr/bin/env python3
"""Where the demo's time goes: time each demo step, then print per-stage times from the cwltool logs.

    demo_times.py run --label NAME --record TIMES.tsv [--log LOG] -- COMMAND ...
        runs COMMAND (stdout passes through), appends NAME, wall, user and sys CPU seconds of
        COMMAND and its children to TIMES.tsv; with --log, COMMAND's stderr is also copied to LOG,
        each line prefixed with the seconds since the start (the per-stage table reads them).
    demo_times.py report TIMES.tsv [LOG ...]
        prints the demo steps (wall, CPU) and, per workflow step in each cwltool log, the number
        of tool runs, the step's wall span and the tools' summed run time (> span when cwltool
        --parallel runs them side by side).

Standard library only: it runs with any python3, before or without the project's environment.
"""
from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A line of a `run --log` file ("12.345\t...") or of cwltool --timestamps ("[2026-01-31 12:00:00] ...").
ELAPSED = re.compile(r"^(\d+\.\d+)\t(.*)$")
STAMPED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (.*)$")
STEP_EVENT = re.compile(r"\[step ([^\]]+)\] (start|completed \w+)")
JOB_START = re.compile(r"\[job ([^\]]+)\] \S*\$ ")
JOB_END = re.compile(r"\[job ([^\]]+)\] completed \w+")
SCATTER_INDEX = re.compile(r"_\d+$")


def run_timed(label: str, record: Path, log: Path | None, command: list[str]) -> int:
    """Run ``command``; record its wall and CPU seconds; copy its stderr, time-stamped, to ``log``."""
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if log is None:
        returncode = subprocess.run(command, check=False).returncode
    else:
        returncode = run_logging_stderr(command, log, start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - start
    with record.open("a", encoding="utf-8") as out:
        out.write(f"{label}\t{wall:.1f}\t{after.ru_utime - before.ru_utime:.1f}\t"
                  f"{after.ru_stime - before.ru_stime:.1f}\n")
    return returncode


def run_logging_stderr(command: list[str], log: Path, start: float) -> int:
    """Pass ``command``'s stderr through line by line, also to ``log`` with seconds since ``start``."""
    with log.open("w", encoding="utf-8") as copy, \
            subprocess.Popen(command, stderr=subprocess.PIPE) as process:
        assert process.stderr is not None
        try:
            for raw in process.stderr:
                sys.stderr.buffer.write(raw)
                sys.stderr.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                copy.write(f"{time.monotonic() - start:.3f}\t{line}\n")
        except KeyboardInterrupt:  # the child got the same Ctrl-C; wait for it to stop
            pass
        return process.wait()


@dataclass
class Step:
    """One workflow step as the log shows it: its span and its tool runs."""

    name: str
    start: float
    end: float | None = None
    status: str = ""
    jobs: int = 0
    busy: float = 0.0
    open_jobs: dict[str, float] = field(default_factory=dict)


def timed_lines(log: Path):
    """(seconds, text) for each time-stamped line of ``log``; untimed lines (tool output) are skipped."""
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        line = ANSI.sub("", raw)
        if match := ELAPSED.match(line):
            yield float(match[1]), match[2]
        elif match := STAMPED.match(line):
            yield datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").timestamp(), match[2]


def steps_of(log: Path) -> list[Step]:
    """The steps of one cwltool log in the order they started."""
    steps: dict[str, Step] = {}
    for seconds, text in timed_lines(log):
        if match := STEP_EVENT.search(text):
            name, event = match[1], match[2]
            if event == "start":
                steps.setdefault(name, Step(name, seconds))
            elif name in steps:
                steps[name].end, steps[name].status = seconds, event.split()[1]
        elif match := JOB_START.search(text):
            step = steps.get(SCATTER_INDEX.sub("", match[1]))
            if step is not None:
                step.open_jobs[match[1]] = seconds
        elif match := JOB_END.search(text):
            step = steps.get(SCATTER_INDEX.sub("", match[1]))
            if step is not None and match[1] in step.open_jobs:
                step.jobs += 1
                step.busy += seconds - step.open_jobs.pop(match[1])
    return sorted(steps.values(), key=lambda step: step.start)


def print_demo_steps(record: Path) -> None:
    print(f"{'demo step':28s} {'wall s':>8s} {'user s':>8s} {'sys s':>7s}")
    total = [0.0, 0.0, 0.0]
    for line in record.read_text(encoding="utf-8").splitlines():
        label, *numbers = line.split("\t")
        values = [float(n) for n in numbers]
        total = [t + v for t, v in zip(total, values, strict=True)]
        print(f"{label:28s} {values[0]:8.1f} {values[1]:8.1f} {values[2]:7.1f}")
    print(f"{'total':28s} {total[0]:8.1f} {total[1]:8.1f} {total[2]:7.1f}")


def print_workflow_steps(log: Path) -> None:
    steps = steps_of(log)
    if not steps:
        return
    print(f"\n{log.name}:")
    print(f"  {'step':26s} {'runs':>5s} {'span s':>8s} {'tool s':>8s}")
    for step in steps:
        span = f"{step.end - step.start:8.1f}" if step.end is not None else f"{'?':>8s}"
        runs = f"{step.jobs:5d}" if step.jobs else f"{'':5s}"
        busy = f"{step.busy:8.1f}" if step.jobs else f"{'':8s}"
        failed = "" if step.status in ("", "success") else f"  ({step.status})"
        print(f"  {step.name:26s} {runs} {span} {busy}{failed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run and time one demo step")
    run.add_argument("--label", required=True)
    run.add_argument("--record", type=Path, required=True)
    run.add_argument("--log", type=Path)
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    report = commands.add_parser("report", help="print the per-stage times")
    report.add_argument("record", type=Path)
    report.add_argument("logs", type=Path, nargs="*")
    args = parser.parse_args(argv)
    if args.command == "run":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            parser.error("run: no COMMAND after --")
        return run_timed(args.label, args.record, args.log, command)
    print_demo_steps(args.record)
    for log in args.logs:
        print_workflow_steps(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
