"""gcmlm jobs: CWL job files from a cohort manifest, as scripts/demo.sh writes them; every --set
checked against the workflow's inputs; the example jobs in inputs/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gcmlm.cli import main as gcmlm
from gcmlm.jobs import BUILDERS, Misfit, fit_value, load_workflow, main

REPO = Path(__file__).resolve().parents[2]


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
    # the manifest's label maps go to the run report (matched to masks by <patient_id>.nii.gz)
    assert _paths(job, "ct_labels", out.parent) == [demo_cohort / "labels" / f"{p}.nii.gz"
                                                    for p in job["ct_patient_ids"]]


def test_pathology_job_with_slide_model_abmil_takes_the_outcome_table(demo_cohort, tmp_path, capsys):
    out = tmp_path / "jobs" / "pathology.job.yml"
    base = ["pathology", "--manifest", str(demo_cohort / "manifest.csv"), "--out", str(out)]
    assert main([*base, "--clinical", str(demo_cohort / "clinical.csv"), "--set", "slide_model=abmil",
                 "--set", "label=mlm"]) == 0
    job = yaml.safe_load(out.read_text())
    assert (out.parent / job["labels"]["path"]).resolve() == demo_cohort / "clinical.csv"
    assert job["slide_model"] == "abmil" and job["label"] == "mlm"
    assert "# heatmap_slides: 4  # int: " in out.read_text()
    out.unlink()
    assert main([*base, "--set", "slide_model=abmil"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gcmlm jobs: error: workflows/pathology.cwl: slide_model abmil trains a MIL model on the outcome: "
                   "give --clinical C.csv (or --set labels=C.csv) and --set label=COLUMN"]
    assert not out.exists()
    assert main([*base, "--set", "slide_model=attention"]) == 2
    assert "slide_model is enum(mean|abmil); expected one of mean, abmil" in capsys.readouterr().err
    assert main([*base]) == 0 and "labels" not in yaml.safe_load(out.read_text())  # mean: no outcome needed


def test_gc_mlm_job_takes_slide_model(demo_cohort, tmp_path):
    out = tmp_path / "job.yml"
    assert _gc_mlm(demo_cohort, out, "slide_model=abmil", "heatmap_slides=2") == 0
    job = yaml.safe_load(out.read_text())
    assert job["slide_model"] == "abmil" and job["heatmap_slides"] == 2


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


def _gc_mlm(demo_cohort, out: Path, *sets: str) -> int:
    args = ["jobs", "gc-mlm", "--manifest", str(demo_cohort / "manifest.csv"), "--clinical",
            str(demo_cohort / "clinical.csv"), "--model", str(out.parent / "model.zip"), "--out", str(out)]
    for pair in sets:
        args += ["--set", pair]
    return gcmlm(args)


def test_gcmlm_jobs_and_python_m_gcmlm_jobs_are_the_same_command(demo_cohort, tmp_path):
    assert _gc_mlm(demo_cohort, tmp_path / "a.yml", "use_gpu=false") == 0
    subprocess.run([sys.executable, "-m", "gcmlm.jobs", "gc-mlm", "--manifest", str(demo_cohort / "manifest.csv"),
                    "--clinical", str(demo_cohort / "clinical.csv"), "--model", str(tmp_path / "model.zip"),
                    "--out", str(tmp_path / "b.yml"), "--set", "use_gpu=false"], check=True)
    assert (tmp_path / "a.yml").read_text().replace("a.yml", "b.yml") == (tmp_path / "b.yml").read_text()


def test_unknown_input_is_refused_with_the_workflow_and_the_closest_names(demo_cohort, tmp_path, capsys):
    out = tmp_path / "job.yml"
    assert _gc_mlm(demo_cohort, out, "use_gpu=false", "tilling_preset=bwh_biopsy") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gcmlm jobs: error: workflows/gc-mlm.cwl: --set tilling_preset: gc-mlm has no input "
                   "'tilling_preset'; closest: tiling_preset"]
    assert not out.exists()


@pytest.mark.parametrize(("pair", "expected"), [
    ("use_gpu=maybe", "use_gpu is boolean; expected true or false"),
    ("radiomics_label=2.5", "radiomics_label is int; expected a whole number"),
    ("target_mpp=fast", "target_mpp is float?; expected a number"),
    ("merge_policy=dorp", "merge_policy is enum(fail|drop|impute); expected one of fail, drop, impute"),
    ("spacing=1.5", "spacing is float[]?; expected a list of float, written [v1, v2, ...]"),
    ("k_features=[5, many]", "k_features is int[]?; expected a whole number"),
    ("encoder_checkpoint=no-such.bin", "encoder_checkpoint is File?; no such file: no-such.bin"),
    ("slide_map=null", "slide_map is File; expected the path of a file"),
])
def test_value_that_does_not_fit_the_input_type_is_refused(demo_cohort, tmp_path, capsys, pair, expected):
    assert _gc_mlm(demo_cohort, tmp_path / "job.yml", pair) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gcmlm jobs: error: workflows/gc-mlm.cwl: --set {pair}: {expected}"]
    assert not (tmp_path / "job.yml").exists()


def test_values_are_written_as_the_input_type_wants_them(demo_cohort, tmp_path):
    out = tmp_path / "jobs" / "job.yml"
    out.parent.mkdir()
    weights = tmp_path / "uni.bin"
    weights.write_bytes(b"w")
    assert _gc_mlm(demo_cohort, out, "encoder_checkpoint=" + str(weights), "label=yes", "seed=0",
                   "merge_policy=drop", "tiling_preset=null", "models=[rad, fused]", "k_features=[5, 10]") == 0
    job = yaml.safe_load(out.read_text())
    assert job["encoder_checkpoint"] == {"class": "File", "path": "../uni.bin"}  # relative to the job
    assert job["label"] == "yes"  # a string input takes the text as written, not YAML's true
    assert job["seed"] == 0 and job["merge_policy"] == "drop" and job["tiling_preset"] is None
    assert job["models"] == ["rad", "fused"] and job["k_features"] == [5, 10]


def test_job_lists_the_inputs_it_leaves_at_their_defaults_as_comments(demo_cohort, tmp_path):
    out = tmp_path / "train.job.yml"
    assert main(["radiology-train", "--manifest", str(demo_cohort / "manifest.csv"), "--first", "2", "--out",
                 str(out), "--set", "dataset_id=501", "--set", "fold=0"]) == 0
    text = out.read_text()
    assert "# Run: cwltool --enable-ext workflows/radiology-train.cwl" in text
    assert "# dataset_name:  # string, REQUIRED: dataset name: DatasetNNN_<name>" in text.splitlines()
    assert "# tiny: false  # boolean: tiny plans variant nnUNetPlans_tiny (tests, demos)" in text.splitlines()
    assert "# dataset_id:" not in text and "# fold:" not in text
    assert yaml.safe_load(text)["fold"] == "0"  # a string input: "0", not 0


def test_workflow_option_reads_another_workflow_file(demo_cohort, tmp_path, capsys):
    wf = tmp_path / "mine.cwl"
    wf.write_text("cwlVersion: v1.2\nclass: Workflow\ninputs:\n  - id: slides\n    type: File[]\n"
                  "  - id: slide_map\n    type: File\n  - id: depth\n    type: int?\n"
                  "outputs: []\nsteps: []\n")
    args = ["jobs", "pathology", "--manifest", str(demo_cohort / "manifest.csv"), "--workflow", str(wf),
            "--out", str(tmp_path / "job.yml")]
    assert gcmlm([*args, "--set", "depth=3"]) == 0
    assert yaml.safe_load((tmp_path / "job.yml").read_text())["depth"] == 3
    assert gcmlm([*args, "--set", "encoder=uni_v1"]) == 2
    assert f"{wf}: --set encoder: pathology has no input 'encoder'; its inputs: slides, slide_map, depth" \
        in capsys.readouterr().err


def test_packed_workflow_inputs_are_read_from_its_main_process(tmp_path):
    wf = tmp_path / "packed.cwl"
    wf.write_text(yaml.safe_dump({"cwlVersion": "v1.2", "$graph": [
        {"id": "#tool", "class": "CommandLineTool", "inputs": []},
        {"id": "#main", "class": "Workflow", "inputs": [
            {"id": "#main/policy", "type": {"type": "enum", "symbols": ["#main/policy/fail", "#main/policy/drop"]}},
        ]},
    ]}))
    workflow = load_workflow("fusion", wf)
    assert list(workflow.inputs) == ["policy"]
    assert fit_value("drop", workflow.inputs["policy"].type, "drop", tmp_path) == "drop"
    with pytest.raises(Misfit, match="expected one of fail, drop"):
        fit_value("impute", workflow.inputs["policy"].type, "impute", tmp_path)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_workflow_has_a_valid_example_job_in_inputs(name):
    """inputs/<workflow>.job.yml names only the workflow's inputs, with values of their types, and
    sets every required one."""
    workflow = load_workflow(name)
    example = REPO / "inputs" / f"{name}.job.yml"
    job = yaml.safe_load(example.read_text())
    assert set(job) <= set(workflow.inputs), sorted(set(job) - set(workflow.inputs))
    for key, value in job.items():
        assert fit_value(value, workflow.inputs[key].type, None, example.parent) == value, key
    assert not [i.name for i in workflow.inputs.values() if i.required and i.name not in job]
    assert f"gcmlm jobs {name} " in example.read_text()
