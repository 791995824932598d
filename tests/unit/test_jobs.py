"""python -m gcmlm.jobs: CWL job files from a cohort manifest, as scripts/demo.sh writes them."""

from __future__ import annotations

from pathlib import Path

import yaml

from gcmlm.jobs import main


def _paths(job: dict, key: str, job_dir: Path) -> list[Path]:
    return [(job_dir / f["path"]).resolve() for f in job[key]]


def test_gc_mlm_job_lists_every_ct_and_slide_relative_to_the_job(demo_cohort, tmp_path):
    out = tmp_path / "jobs" / "gc-mlm.job.yml"
    assert main(["gc-mlm", "--manifest", str(demo_cohort / "manifest.csv"), "--clinical",
                 str(demo_cohort / "clinical.csv"), "--model", str(tmp_path / "model.zip"), "--out", str(out),
                 "--set", "use_gpu=false", "--set", "spacing=[1.6, 1.6, 2.5]"]) == 0
    job = yaml.safe_load(out.read_text())
    assert job["ct_patient_ids"] == [f"GC{i:03d}" for i in range(1, 13)]
    assert _paths(job, "ct_images", out.parent) == [demo_cohort / "ct" / f"{p}.nii.gz" for p in job["ct_patient_ids"]]
    slides = _paths(job, "slides", out.parent)
    assert len(slides) == 13 and all(p.is_file() and p.parent == demo_cohort / "slides" for p in slides)
    assert not any(f["path"].startswith("/") for f in job["ct_images"] + job["slides"])  # the folder can move
    assert job["use_gpu"] is False and job["spacing"] == [1.6, 1.6, 2.5]


def test_training_job_takes_labelled_cts_and_names_what_is_missing(demo_cohort, tmp_path, capsys):
    out = tmp_path / "train.job.yml"
    manifest = str(demo_cohort / "manifest.csv")
    assert main(["radiology-train", "--manifest", manifest, "--first", "3", "--out", str(out)]) == 0
    job = yaml.safe_load(out.read_text())
    assert job["case_ids"] == ["GC001", "GC002", "GC003"]
    assert _paths(job, "labels", tmp_path) == [demo_cohort / "labels" / f"GC00{i}.nii.gz" for i in (1, 2, 3)]
    assert main(["radiology-train", "--manifest", manifest, "--patients", "GC002", "GC999", "--out",
                 str(tmp_path / "x.yml")]) == 2
    assert "no labelled CT for patient(s) GC999" in capsys.readouterr().err
    assert not (tmp_path / "x.yml").exists()
