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
from gcmlm.common.manifest import read_manifest


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
    cts = read_manifest(manifest)
    cts = cts[(cts["kind"] == "ct") & (cts["label"] != "")]
    if patients:
        missing = sorted(set(patients) - set(cts["patient_id"]))
        if missing:
            raise GcmlmError(f"no labelled CT for patient(s) {', '.join(missing)}", manifest)
        cts = cts[cts["patient_id"].isin(patients)]
    if first:
        cts = cts.head(first)
    if cts.empty:
        raise GcmlmError("no CT rows with a label to train on", manifest)
    return {
        "images": [_file(p, job_dir) for p in cts["path"]],
        "labels": [_file(p, job_dir) for p in cts["label"]],
        "case_ids": list(cts["patient_id"]),
    }


def gc_mlm_job(manifest: Path, clinical: Path, model: Path, job_dir: Path) -> dict:
    rows = read_manifest(manifest)
    cts, slides = rows[rows["kind"] == "ct"], rows[rows["kind"] == "slide"]
    if cts.empty or slides.empty:
        raise GcmlmError("the manifest needs ct and slide rows for gc-mlm", manifest)
    return {
        "ct_images": [_file(p, job_dir) for p in cts["path"]],
        "ct_patient_ids": list(cts["patient_id"]),
        "nnunet_model": _file(model, job_dir),
        "slides": [_file(p, job_dir) for p in slides["path"]],
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
