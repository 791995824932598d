"""radiomics-extract against PyRadiomics called directly, side by side on the same cases.

Cases: PyRadiomics' brain1 (../shared/data/radiomics, label 1) and the CTs of a demo cohort
(tumour label 2). Three comparisons, each timed in alternating order (ours, theirs, then theirs,
ours, ...) so machine load hits both alike; the median over repeats is reported:

  per case   `gcmlm radiomics-extract --image --mask --patient-id` vs `pyradiomics IMAGE MASK`, one process per case
  batch      `gcmlm radiomics-extract --manifest` vs `pyradiomics batch.csv`, one process for all cases
  in-process gcmlm.radiology.radiomics_extract.extract_features() vs a RadiomicsFeatureExtractor.execute() loop

and checks that the feature values are identical (same names; values equal to the 8 significant
digits our tables keep). Target: overhead <= 5 %.

    .venv/bin/python benchmarks/radiomics/bench_radiomics.py [--patients 6] [--repeats 3] [--params ct_default]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("GCMLM_SHARED_DATA", REPO.parent / "shared" / "data"))
BIN = Path(sys.executable).parent


def cases(work: Path, patients: int) -> list[dict]:
    from gcmlm.demo.demo_cohort import make_cohort

    found = []
    brain = SHARED / "radiomics"
    if (brain / "brain1_image.nrrd").is_file():
        found.append({"id": "brain1", "image": brain / "brain1_image.nrrd", "mask": brain / "brain1_label.nrrd", "label": 1})
    cohort = work / "demo"
    make_cohort(cohort, patients=patients, seed=0, slide_size=(256, 256))
    for pid in sorted(p.name.split(".")[0] for p in (cohort / "ct").glob("*.nii.gz")):
        found.append({"id": pid, "image": cohort / "ct" / f"{pid}.nii.gz", "mask": cohort / "labels" / f"{pid}.nii.gz",
                      "label": 2})
    return found


def timed(command: list[str], out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; the output is removed first (PyRadiomics' CLI appends to a CSV).

    CPU time (user + system of the child) is reported beside wall time because it is far less
    sensitive to other load on a shared machine.
    """
    out.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed_here(function) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def params_per_label(params: str, labels: set[int], work: Path) -> dict[int, str]:
    """A copy of the parameter file per label value: both tools then read the label from it.

    (PyRadiomics' CLI lets the file's ``label`` win over its deprecated ``--label`` and over
    ``--setting label:N``, so a flag would not select the same label in both tools.)
    """
    import yaml

    base = yaml.safe_load(Path(params).read_text())
    out = {}
    for label in sorted(labels):
        base.setdefault("setting", {})["label"] = label
        out[label] = str(work / f"params_label{label}.yaml")
        Path(out[label]).write_text(yaml.safe_dump(base))
    return out


def ours_single(case: dict, params: str, out: Path) -> list[str]:
    return [str(BIN / "gcmlm"), "radiomics-extract", "--image", str(case["image"]), "--mask", str(case["mask"]),
            "--patient-id", case["id"], "--params", params, "--out", str(out), "-q"]


def theirs_single(case: dict, params: str, out: Path) -> list[str]:
    return [str(BIN / "pyradiomics"), str(case["image"]), str(case["mask"]), "--param", params, "-o", str(out), "-f", "csv"]


def side_by_side(ours, theirs, repeats: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median (wall, CPU) of each, alternating which one goes first."""
    a, b = [], []
    for r in range(repeats):
        if r % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
    return tuple(statistics.median(x) for x in zip(*a, strict=True)), tuple(statistics.median(x) for x in zip(*b, strict=True))


def row(name: str, ours: tuple[float, float], theirs: tuple[float, float], note: str = "") -> str:
    return (f"{name:<12}{ours[0]:>9.2f}{theirs[0]:>9.2f}{ours[0] / theirs[0]:>8.3f}"
            f"{ours[1]:>10.2f}{theirs[1]:>9.2f}{ours[1] / theirs[1]:>8.3f}  {note}")


def read_rows(path: Path, key: str, prefix: str = "") -> dict[str, dict[str, float]]:
    """{case: {feature name: value}} from our table (prefix rad_) or PyRadiomics' CSV."""
    rows = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            rows[row[key]] = {k[len(prefix):]: float(v) for k, v in row.items()
                              if k.startswith(prefix) and k != key and not k.startswith(("diagnostics_", "Image", "Mask", "Label"))}
    return rows


def compare(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]) -> tuple[bool, float, int]:
    """(same names, largest relative difference, values compared)."""
    same_names, worst, n = set(ours) == set(theirs), 0.0, 0
    for case, features in theirs.items():
        mine = ours.get(case, {})
        same_names &= list(mine) == list(features)
        for name, value in features.items():
            if name in mine:
                n += 1
                worst = max(worst, abs(mine[name] - value) / max(abs(value), 1e-300) if value else abs(mine[name]))
    return same_names, worst, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6, help="demo cohort CTs (besides brain1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default="ct_default", help="shipped name or PyRadiomics parameter file")
    parser.add_argument("--keep", metavar="DIR", help="keep the outputs here")
    args = parser.parse_args()

    from gcmlm.radiology.radiomics_extract import Case, extract_features, resolve_params

    params = str(resolve_params(args.params))
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-radiomics-"))
    work.mkdir(parents=True, exist_ok=True)
    all_cases = cases(work, args.patients)
    by_label = params_per_label(params, {c["label"] for c in all_cases}, work)
    print(f"{len(all_cases)} cases ({', '.join(c['id'] for c in all_cases)}), params {Path(params).name}, "
          f"{args.repeats} repeats, {os.cpu_count()} CPUs")

    # 1. one process per case
    ours_total, theirs_total = [0.0, 0.0], [0.0, 0.0]
    ours_rows, theirs_rows = {}, {}
    header = f"{'':<12}{'wall: gcmlm':>13}{'pyrad':>7}{'ratio':>8}{'CPU: gcmlm':>12}{'pyrad':>7}{'ratio':>8}"
    print("\n1. one process per case (seconds, median of repeats)\n" + header)
    for case in all_cases:
        mine, other = work / f"ours_{case['id']}.csv", work / f"theirs_{case['id']}.csv"
        p = by_label[case["label"]]
        t_ours, t_theirs = side_by_side(lambda c=case, o=mine, p=p: timed(ours_single(c, p, o), o),
                                        lambda c=case, o=other, p=p: timed(theirs_single(c, p, o), o), args.repeats)
        ours_total = [x + y for x, y in zip(ours_total, t_ours, strict=True)]
        theirs_total = [x + y for x, y in zip(theirs_total, t_theirs, strict=True)]
        print(row(case["id"], t_ours, t_theirs))
        ours_rows.update(read_rows(mine, "patient_id", "rad_"))
        theirs_rows.update({case["id"]: next(iter(read_rows(other, "Image").values()))})
    print(row("total", ours_total, theirs_total))
    same, worst, n = compare(ours_rows, theirs_rows)
    print(f"identical outputs (per case): names {'same' if same else 'DIFFER'}, {n} values, "
          f"max relative difference {worst:.2e}")

    # 2. one process for all cases
    # The labels differ (brain1 1, demo 2): each tool runs once per label group, with that group's params.
    groups = {}
    for c in all_cases:
        groups.setdefault(c["label"], []).append(c)
    t_ours, t_theirs = [0.0, 0.0], [0.0, 0.0]
    ours_batch, theirs_batch = {}, {}
    for label, group in groups.items():
        m, b = work / f"cases_{label}.csv", work / f"batch_{label}.csv"
        with m.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "image", "mask"])
            w.writerows([c["id"], c["image"], c["mask"]] for c in group)
        with b.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ID", "Image", "Mask"])
            w.writerows([c["id"], c["image"], c["mask"]] for c in group)
        mine, other = work / f"ours_batch_{label}.csv", work / f"theirs_batch_{label}.csv"
        a, t = side_by_side(
            lambda m=m, o=mine, p=by_label[label]: timed([str(BIN / "gcmlm"), "radiomics-extract", "--manifest", str(m),
                                                           "--params", p, "--out", str(o), "-q"], o),
            lambda b=b, o=other, p=by_label[label]: timed([str(BIN / "pyradiomics"), str(b), "--param", p, "-o", str(o),
                                                           "-f", "csv"], o),
            args.repeats)
        t_ours = [x + y for x, y in zip(t_ours, a, strict=True)]
        t_theirs = [x + y for x, y in zip(t_theirs, t, strict=True)]
        ours_batch.update(read_rows(mine, "patient_id", "rad_"))
        theirs_batch.update(read_rows(other, "ID"))
    print("\n2. one process for all cases (per label group: brain1, demo)\n" + header)
    print(row("batch", t_ours, t_theirs))
    same, worst, n = compare(ours_batch, theirs_batch)
    print(f"identical outputs (batch): names {'same' if same else 'DIFFER'}, {n} values, max relative difference {worst:.2e}")

    # 3. in-process: our extract_features() (checks + extraction) vs PyRadiomics' extractor loop
    import logging

    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)  # the same logging for both (extract_features() sets this too)
    logging.getLogger("radiomics").setLevel(logging.ERROR)

    def ours_api():
        for label, group in groups.items():
            extract_features([Case(c["id"], str(c["image"]), str(c["mask"])) for c in group], Path(by_label[label]))

    def theirs_api():
        for label, group in groups.items():
            extractor = RadiomicsFeatureExtractor(by_label[label])
            for c in group:
                extractor.execute(str(c["image"]), str(c["mask"]))

    a, t = side_by_side(lambda: timed_here(ours_api), lambda: timed_here(theirs_api), args.repeats)
    print("\n3. in-process: gcmlm extract_features() vs a RadiomicsFeatureExtractor.execute() loop\n" + header)
    print(row("python API", a, t))
    print("\ntarget: ratio <= 1.05")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
