"""Capacity plan from measured per-stage costs: core-hours, GPU-hours, wall time on N Slurm nodes, storage.

    .venv/bin/python benchmarks/capacity.py > sizing.md

CPU costs come from benchmarks/measured_costs.json (each figure with its source in the benchmark
READMEs); GPU costs from the newest GPU results JSON (benchmarks/*/results*.json written by
benchmarks/gpu/run.sh on a CUDA machine, not a dry run). Until one exists, GPU cells read
"GPU: not measured". Prints markdown: the tables of docs/cluster.md's "Sizing" section.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLURAL = {"slide": "slides", "ct": "CTs", "patch": "patches", "patient": "patients"}
NOT_MEASURED = "GPU: not measured"
CPU_MEASURED, CPU_DERIVED, GPU_MEASURED = "CPU, measured here", "CPU, derived (not measured)", "GPU, measured"


@dataclass(frozen=True)
class Node:
    """The Slurm node shape the wall times assume."""

    cores: int = 32
    gpus: int = 1
    memory_gb: int = 256

    def describe(self) -> str:
        return f"{self.cores} cores, {self.gpus} GPU (H100/H200 class), {self.memory_gb} GB RAM"


@dataclass
class Row:
    """One stage for a whole cohort: core-hours and GPU-hours (None: not measured / not used)."""

    stage: str
    plan: str  # "both", "cpu" (the CPU-only plan) or "gpu" (the GPU plan)
    units: str
    core_hours: float
    gpu_hours: float | None
    source: str
    bound: str


def load_costs(path: Path) -> dict:
    return json.loads(path.read_text())


def find_gpu_results(paths: list[Path]) -> tuple[Path, dict] | None:
    """The newest results JSON measured on CUDA (dry runs and CPU runs are skipped)."""
    found = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("device") == "cuda" and not data.get("dry_run"):
            found.append((path.stat().st_mtime, path, data))
    return max(found, key=lambda item: item[0])[1:] if found else None


def gpu_rate(results: dict | None, section: str, *keys: str) -> float | None:
    node = (results or {}).get(section, {})
    for key in keys:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    value = node.get("value") if isinstance(node, dict) else None
    return float(value) if value else None


def stage_rows(costs: dict, gpu: dict | None, patients: int) -> list[Row]:
    inputs, stages = costs["inputs"], costs["stages"]
    slides, cts = 2 * patients, patients
    patches = slides * inputs["patches_per_slide"]["value"]
    voxel_scale = inputs["clinical_ct_voxels"]["value"] / inputs["demo_ct_voxels"]["value"]
    counts = {"slide": slides, "ct": cts, "patch": patches, "patient": patients}

    def cpu(stage: str, plan: str = "both") -> Row:
        cost = stages[stage]
        n = counts[cost["per"]]
        seconds = cost["core_seconds"] * n * (voxel_scale if cost.get("scale_with_ct_voxels") else 1.0)
        units = f"{n:,} {PLURAL[cost['per']]}" + (" (demo CT cost x voxels)" if cost.get("scale_with_ct_voxels") else "")
        return Row(stage, plan, units, seconds / 3600, None, CPU_DERIVED if cost.get("derived") else CPU_MEASURED,
                   cost["bound"])

    embed_rate = gpu_rate(gpu, "patch_embed", "patches_per_second")
    predict_s = gpu_rate(gpu, "nnunet_predict", "cuda", "seconds_per_case")
    reader = cpu("patch-embed (reader)", "gpu")
    reader.stage = "patch-embed on GPU (UNI)"
    reader.gpu_hours = patches / embed_rate / 3600 if embed_rate else None
    reader.source = f"{CPU_MEASURED} (reader cores); " + (GPU_MEASURED if embed_rate else NOT_MEASURED)
    predict_gpu = Row("nnunet-predict on GPU", "gpu", f"{cts:,} CTs (demo CT cost x voxels)", 0.0,
                      predict_s * voxel_scale * cts / 3600 if predict_s else None,
                      GPU_MEASURED + " (demo CT cost x voxels)" if predict_s else NOT_MEASURED,
                      stages["nnunet-predict"]["bound"])
    predict_cpu = cpu("nnunet-predict", "cpu")
    predict_cpu.stage = "nnunet-predict on CPU"
    embed_cpu = cpu("patch-embed (UNI on CPU)", "cpu")
    return [cpu("wsi-tile"), reader, embed_cpu, cpu("ct-preprocess"), predict_gpu, predict_cpu,
            cpu("radiomics-extract"), cpu("slide-pool"), cpu("fusion-train")]


def plan_totals(rows: list[Row], plan: str) -> tuple[float, float | None]:
    """(core-hours, GPU-hours or None when a GPU figure is missing) of the CPU-only or the GPU plan."""
    used = [r for r in rows if r.plan in ("both", plan)]
    core = sum(r.core_hours for r in used)
    if plan == "cpu":
        return core, 0.0
    gpu_parts = [r.gpu_hours for r in used if r.plan == "gpu"]
    return core, None if any(g is None for g in gpu_parts) else sum(gpu_parts)


def wall_hours(core_hours: float, gpu_hours: float | None, nodes: int, node: Node) -> float | None:
    """Perfect packing, CPU and GPU work of different patients overlapping: the busier resource sets the time."""
    if gpu_hours is None:
        return None
    return max(core_hours / (nodes * node.cores), gpu_hours / (nodes * node.gpus) if gpu_hours else 0.0)


def hours(value: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def storage_rows(costs: dict, patients: int) -> list[tuple[str, float, str]]:
    inputs = costs["inputs"]
    slides, per_slide = 2 * patients, inputs["patches_per_slide"]["value"]
    h5 = inputs["hdf5_overhead_bytes"]["value"]
    voxels = inputs["clinical_ct_voxels"]["value"]
    return [
        ("coords (wsi-tile patches/*.h5)", slides * (per_slide * 16 + h5), "2 int64 per patch"),
        ("wsi-tile QA PNGs (masks/, stitches/)", slides * inputs["qa_png_bytes_per_slide"]["value"], "measured size"),
        ("features (patch-embed h5_files + pt_files)", slides * 2 * (per_slide * inputs["feature_dim"]["value"] * 4 + h5),
         "float32, written twice (CLAM's .h5 and .pt)"),
        ("masks (nnunet-predict)", patients * voxels * inputs["mask_bytes_per_voxel"]["value"], "gzipped label maps"),
        ("preprocessed CTs (ct-preprocess)", patients * voxels * inputs["ct_bytes_per_voxel"]["value"], "gzipped int16"),
    ]


def size(nbytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes / 1e3:,.0f} kB"


def cohort_section(costs: dict, gpu: dict | None, patients: int, nodes: list[int], node: Node) -> list[str]:
    rows = stage_rows(costs, gpu, patients)
    lines = [f"### {patients:,} patients (one CT, two slides each)", "",
             "| stage | work | core-hours | GPU-hours | figures | bound by |", "|---|---|---:|---:|---|---|"]
    for r in rows:
        gpu_cell = "-" if r.plan != "gpu" else hours(r.gpu_hours)
        core_cell = "-" if r.core_hours == 0 else hours(r.core_hours)
        lines.append(f"| {r.stage} | {r.units} | {core_cell} | {gpu_cell} | {r.source} | {r.bound} |")
    lines += ["", "| plan | core-hours | GPU-hours | " + " | ".join(f"wall h, {n} node{'s' * (n > 1)}" for n in nodes)
              + " |", "|---|---:|---:|" + "---:|" * len(nodes)]
    for plan, label in (("cpu", "CPU only (UNI and nnU-Net on CPU)"), ("gpu", "GPU nodes (UNI and nnU-Net on the GPU)")):
        core, gpu_h = plan_totals(rows, plan)
        walls = [hours(wall_hours(core, gpu_h, n, node)) for n in nodes]
        lines.append(f"| {label} | {hours(core)} | {hours(gpu_h) if plan == 'gpu' else '-'} | " + " | ".join(walls) + " |")
    lines += ["", "| storage | size | how |", "|---|---:|---|"]
    total = 0.0
    for what, nbytes, how in storage_rows(costs, patients):
        total += nbytes
        lines.append(f"| {what} | {size(nbytes)} | {how} |")
    lines += [f"| total | {size(total)} | |", ""]
    return lines


def engine_section(costs: dict, gpu: dict | None, node: Node) -> list[str]:
    """cwltool vs Toil: Toil's per-job cost against the per-patient work it spreads over nodes."""
    engines = costs["engines"]
    per_job, jobs = engines["toil_seconds_per_job"]["value"], engines["jobs_per_patient"]["value"]
    overhead = per_job * jobs
    lines = ["### cwltool or Toil", "",
             f"Toil costs {per_job} s per tool job here, cwltool about {engines['cwltool_seconds_per_job']['value']} s; "
             f"gc-mlm.cwl runs {jobs} tool jobs per patient (one CT, two slides) plus "
             f"{engines['jobs_per_cohort']['value']} per cohort, so Toil adds about {overhead:.1f} s per patient "
             "(an upper bound: measured on 2 cores, where the leader competes with the jobs).", "",
             "| plan | one node, s per patient | patients one node finishes in 24 h (cwltool) | "
             "Toil on N nodes is faster than cwltool on one node when |", "|---|---:|---:|---|"]
    for plan, label in (("cpu", "CPU only"), ("gpu", "GPU nodes")):
        core, gpu_h = plan_totals(stage_rows(costs, gpu, 1), plan)
        per_patient = wall_hours(core, gpu_h, 1, node)
        if per_patient is None:
            lines.append(f"| {label} | {NOT_MEASURED} | - | - |")
            continue
        seconds = per_patient * 3600
        # t/N + overhead < t  <=>  N > t / (t - overhead)
        rule = (f"N >= {math.floor(seconds / (seconds - overhead)) + 1}" if seconds > overhead
                else "never (the per-job cost exceeds the work per patient)")
        lines.append(f"| {label} | {seconds:,.1f} | {math.floor(86400 / seconds):,} | {rule} |")
    return lines + [""]


def render(costs: dict, gpu: tuple[Path, dict] | None, cohorts: list[int], nodes: list[int], node: Node) -> str:
    results = gpu[1] if gpu else None
    source = f"GPU figures from `{gpu[0]}`" if gpu else f"no GPU results JSON found: {NOT_MEASURED}"
    lines = [f"Node shape assumed: {node.describe()}. Wall times assume perfect packing of independent patients, "
             "no queue wait and no engine overhead. " + source + ".", ""]
    for patients in cohorts:
        lines += cohort_section(costs, results, patients, nodes, node)
    lines += engine_section(costs, results, node)
    lines += ["Assumptions: 13,000 patches of 256 px per slide (50k x 40k px at 40x); UNI features 1024 float32; "
              "CT-stage costs measured on 96 x 96 x 32 demo CTs, scaled linearly to 512 x 512 x 200 voxels; "
              "nnunet-predict measured with the tiny test model, TTA off (a full nnU-Net costs more). "
              "Sources of every figure: benchmarks/measured_costs.json."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--costs", type=Path, default=HERE / "measured_costs.json")
    parser.add_argument("--results", type=Path, nargs="*",
                        help="GPU results JSONs (default: benchmarks/*/results*.json)")
    parser.add_argument("--cohorts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--cores-per-node", type=int, default=Node.cores)
    parser.add_argument("--gpus-per-node", type=int, default=Node.gpus)
    args = parser.parse_args(argv)
    results = args.results if args.results is not None else sorted(HERE.glob("*/results*.json"))
    node = Node(cores=args.cores_per_node, gpus=args.gpus_per_node)
    sys.stdout.write(render(load_costs(args.costs), find_gpu_results(results), args.cohorts, args.nodes, node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
