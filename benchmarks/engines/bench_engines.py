"""One workflow on four engine set-ups, side by side: cwltool (sequential), cwltool --parallel,
Toil single_machine and Toil on Slurm (the local cluster of tests/cluster/slurm/slurm-up.sh).

For each run: wall time; the sum of the stage times (every `gcmlm` call is timed by a wrapper first
on PATH, so all engines are measured the same way); the engine overhead, wall - sum (negative when
stages overlapped); and wall / sum. The outputs of every engine are checked identical (by content)
to the first engine's. Runs alternate engines within each repeat; the median is reported.

    .venv/bin/python benchmarks/engines/bench_engines.py --workflow workflows/gc-mlm.cwl --job JOB.yml \
        --overrides inputs/small-node.overrides.yml
    .venv/bin/python benchmarks/engines/bench_engines.py            # no arguments: the slide-pool
        scatter test workflow on a generated cohort (--slides 24)
    options: --engines cwltool,cwltool-parallel,toil-single,toil-slurm  --repeats 1  --keep DIR  --overrides F
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
from engine_runs import DATA, content_of, cwltool_cmd, engine_env, have_slurm, toil_cmd  # noqa: E402

ENGINES = ("cwltool", "cwltool-parallel", "toil-single", "toil-slurm")
STAGE_TIMER = """#!/usr/bin/env bash
start=$(date +%s.%N)
{real} "$@"; rc=$?
echo "$start $(date +%s.%N) $1 $rc" >> {ledger}
exit $rc
"""


def engine_command(engine: str, run_dir: Path, workflow: Path, job: Path, extra: list[str]) -> list[str]:
    out, args = run_dir / "out", [*extra, str(workflow), str(job)]
    if engine == "cwltool":
        return cwltool_cmd(out, *args)
    if engine == "cwltool-parallel":
        return cwltool_cmd(out, "--parallel", *args)
    if engine == "toil-single":
        return toil_cmd(run_dir / "jobstore", out, "single_machine", *args)
    if engine == "toil-slurm":
        return toil_cmd(run_dir / "jobstore", out, "slurm", *args)
    raise ValueError(engine)


def run_once(engine: str, run_dir: Path, workflow: Path, job: Path, extra: list[str]) -> dict:
    run_dir.mkdir(parents=True)
    bindir, ledger = run_dir / "bin", run_dir / "stages.txt"
    bindir.mkdir()
    timer = bindir / "gcmlm"
    timer.write_text(STAGE_TIMER.format(real=shutil.which("gcmlm", path=engine_env()["PATH"]), ledger=ledger))
    timer.chmod(0o755)
    cmd = engine_command(engine, run_dir, workflow, job, extra)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=engine_env([bindir]), cwd=REPO)
    wall = time.perf_counter() - start
    (run_dir / "engine.log").write_text(result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{engine} failed ({result.returncode}); log: {run_dir / 'engine.log'}\n{result.stderr[-3000:]}")
    stages = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
    return {
        "wall": wall,
        "stage_sum": sum(float(end) - float(begin) for begin, end, *_ in stages),
        "stages": len(stages),
        "per_stage": {name: sum(float(e) - float(b) for b, e, n, _ in stages if n == name) for _, _, name, _ in stages},
        "outputs": content_of(json.loads(result.stdout)),
        "command": " ".join(cmd),
    }


def scatter_cohort(root: Path, slides: int) -> Path:
    """A job for the slide-pool scatter test workflow with SLIDES generated feature files."""
    import numpy as np

    from gcmlm.pathology.core.clam_h5 import PatchFeatures, write_features

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows, lines = ["patient_id,slide_id"], []
    for i in range(slides):
        slide, patient = f"S{i:03d}", f"P{i // 2:03d}"
        n = int(rng.integers(200, 2000))
        feats = PatchFeatures(rng.normal(size=(n, 1024)).astype(np.float32), rng.integers(0, 99_999, size=(n, 2)))
        lines.append(f"  - {{class: File, path: {write_features(root / f'{slide}.h5', feats)}}}")
        rows.append(f"{patient},{slide}")
    (root / "slide_map.csv").write_text("\n".join(rows) + "\n")
    job = root / "job.yml"
    job.write_text("features:\n" + "\n".join(lines) + f"\nslide_map: {{class: File, path: {root / 'slide_map.csv'}}}\n")
    return job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path)
    parser.add_argument("--job", type=Path)
    parser.add_argument("--slides", type=int, default=24, help="cohort size for the default workflow")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep run folders (logs, outputs) here")
    parser.add_argument("--overrides", type=Path, help="cwltool/Toil --overrides file, for every engine "
                        "(e.g. inputs/small-node.overrides.yml on 2 cores)")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    if "toil-slurm" in engines and not have_slurm():
        raise SystemExit("no Slurm cluster answers: start one with `sudo tests/cluster/slurm/slurm-up.sh` or drop toil-slurm")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    if args.workflow:
        workflow, job = args.workflow.resolve(), args.job.resolve()
    else:
        workflow, job = DATA / "slide-pool-scatter.cwl", scatter_cohort(work / "cohort", args.slides)

    extra = ["--overrides", str(args.overrides.resolve())] if args.overrides else []
    results: dict[str, list[dict]] = {e: [] for e in engines}
    for repeat in range(args.repeats):
        order = engines if repeat % 2 == 0 else engines[::-1]
        for engine in order:
            print(f"[{repeat + 1}/{args.repeats}] {engine} ...", file=sys.stderr, flush=True)
            run = run_once(engine, work / f"{engine}-{repeat}", workflow, job, extra)
            results[engine].append(run)
            print(f"    wall {run['wall']:.1f} s, stage sum {run['stage_sum']:.1f} s", file=sys.stderr, flush=True)

    reference = results[engines[0]][0]["outputs"]
    for engine, runs in results.items():
        for run in runs:
            if run["outputs"] != reference:
                raise SystemExit(f"{engine}: outputs differ from {engines[0]}'s")

    print(f"\nworkflow {workflow.relative_to(REPO) if workflow.is_relative_to(REPO) else workflow}, job {job}")
    print(f"{results[engines[0]][0]['stages']} stage runs; outputs identical across engines; median of {args.repeats}\n")
    print("| engine | wall s | sum of stage times s | overhead s (wall - sum) | wall / sum |")
    print("|---|---:|---:|---:|---:|")
    for engine, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        stage_sum = statistics.median(r["stage_sum"] for r in runs)
        print(f"| {engine} | {wall:.1f} | {stage_sum:.1f} | {wall - stage_sum:+.1f} | {wall / stage_sum:.2f} |")
    stage_names = sorted({name for runs in results.values() for name in runs[0]["per_stage"]})
    print("\nsum of stage times per stage, s (first repeat):\n")
    print("| stage | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in stage_names:
        print(f"| {name} | " + " | ".join(f"{runs[0]['per_stage'].get(name, 0):.1f}" for runs in results.values()) + " |")
    print("\ncommands (run from the repository root, PATH=.venv/bin:$PATH):")
    for engine, runs in results.items():
        print(f"  {engine}: {runs[0]['command']}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
