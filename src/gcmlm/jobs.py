"""Write CWL job files for the workflows from a cohort manifest.

    python -m gcmlm.jobs radiology-train --manifest M.csv --out train.job.yml [--patients P1 P2 ...]
    python -m gcmlm.jobs gc-mlm --manifest M.csv --clinical C.csv --model model.zip --out job.yml

Paths in the job are written relative to the job file, so a cohort folder can be moved whole.
Extra workflow inputs are given as ``--set name=value`` (YAML values: ``--set use_gpu=false``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from gcmlm.common.atomic import write_text
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import read_manifest, rows_of_kind


def _file(path: str | Path, job_dir: Path, cls: str = "File") -> dict:
    path = Path(path)
    if cls == "File" and path.is_dir():
        cls = "Directory"  # a DICOM series folder
    return {"class": cls, "path": os.path.relpath(path, job_dir)}


def _overrides(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise GcmlmError(f"--set expects name=value, got '{pair}'")
        values[name] = yaml.safe_load(value)
    return values


def radiology_train_job(manifest: Path, job_dir: Path, patients: list[str] | None = None,
                        first: int | None = None) -> dict:
    cts = [row for row in rows_of_kind(read_manifest(manifest), "ct") if row["label"]]
    if patients:
        missing = sorted(set(patients) - {row["patient_id"] for row in cts})
        if missing:
            raise GcmlmError(f"no labelled CT for patient(s) {', '.join(missing)}", manifest)
        cts = [row for row in cts if row["patient_id"] in patients]
    if first:
        cts = cts[:first]
    if not cts:
        raise GcmlmError("no CT rows with a label to train on", manifest)
    return {
        "images": [_file(row["path"], job_dir) for row in cts],
        "labels": [_file(row["label"], job_dir) for row in cts],
        "case_ids": [row["patient_id"] for row in cts],
    }


def gc_mlm_job(manifest: Path, clinical: Path, model: Path, job_dir: Path) -> dict:
    rows = read_manifest(manifest)
    cts, slides = rows_of_kind(rows, "ct"), rows_of_kind(rows, "slide")
    if not cts or not slides:
        raise GcmlmError("the manifest needs ct and slide rows for gc-mlm", manifest)
    return {
        "ct_images": [_file(row["path"], job_dir) for row in cts],
        "ct_patient_ids": [row["patient_id"] for row in cts],
        "nnunet_model": _file(model, job_dir),
        "slides": [_file(row["path"], job_dir) for row in slides],
        "slide_map": _file(manifest, job_dir),
        "clinical": _file(clinical, job_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcmlm.jobs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="workflow", required=True)
    train = sub.add_parser("radiology-train", help="job for workflows/radiology-train.cwl")
    train.add_argument("--patients", nargs="+", help="train on these patients (default: every labelled CT)")
    train.add_argument("--first", type=int, help="train on the first N labelled CTs of the manifest")
    full = sub.add_parser("gc-mlm", help="job for workflows/gc-mlm.cwl")
    full.add_argument("--clinical", required=True, type=Path)
    full.add_argument("--model", required=True, type=Path, help="nnU-Net model zip")
    for p in (train, full):
        p.add_argument("--manifest", required=True, type=Path)
        p.add_argument("--out", required=True, type=Path, help="job file to write (YAML)")
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra workflow input")
    args = parser.parse_args(argv)
    job_dir = args.out.resolve().parent
    try:
        if args.workflow == "radiology-train":
            job = radiology_train_job(args.manifest, job_dir, args.patients, args.first)
        else:
            job = gc_mlm_job(args.manifest, args.clinical, args.model, job_dir)
        job.update(_overrides(args.set))
    except GcmlmError as exc:
        print(f"gcmlm.jobs: error: {exc}", file=sys.stderr)
        return 2
    write_text(args.out, f"# CWL job for workflows/{args.workflow}.cwl, written by python -m gcmlm.jobs\n"
               + yaml.safe_dump(job, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
