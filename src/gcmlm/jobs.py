"""`gcmlm jobs`: write a CWL job file for one of the workflows in workflows/ from a cohort manifest.

    gcmlm jobs radiology-train --manifest M.csv --out train.job.yml [--patients P1 P2 ... | --first N]
    gcmlm jobs radiology --manifest M.csv --model model.zip --out radiology.job.yml
    gcmlm jobs pathology --manifest M.csv --out pathology.job.yml --set encoder=uni_v1
    gcmlm jobs pathology --manifest M.csv --clinical C.csv --out pathology.job.yml \\
        --set encoder=uni_v1 --set slide_model=abmil --set label=mlm
    gcmlm jobs fusion --out fusion.job.yml --set rad_table=rad.csv --set path_table=path.csv \\
        --set clinical_table=clinical.csv --set label=mlm
    gcmlm jobs gc-mlm --manifest M.csv --clinical C.csv --model model.zip --out gc-mlm.job.yml

Paths in the job are written relative to the job file, so a cohort folder can be moved whole.
Any other workflow input is given as `--set name=value`: the name must be an input of the
workflow and the value must fit its type (YAML values: `--set use_gpu=false`,
`--set spacing=[1.6, 1.6, 2.5]`; a path for a File or Directory input). The job lists the
inputs it leaves at their defaults as comments. `python -m gcmlm.jobs` is the same command.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gcmlm.common.atomic import write_text
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import read_manifest, rows_of_kind

log = logging.getLogger("gcmlm")

PROG = "gcmlm jobs"
SUMMARY = "Write a CWL job file for a workflow (workflows/*.cwl) from a cohort manifest."
# The workflows ship in the checkout beside src/; an installed package finds them with --workflow.
WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"
NO_DEFAULT = object()


# ---------------------------------------------------------------------------------------------
# The workflow's inputs


@dataclass(frozen=True)
class WorkflowInput:
    name: str
    type: Any  # a CWL type: "int?", {"type": "array", ...}, ["null", "File"], ...
    default: Any = NO_DEFAULT
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT and not is_optional(self.type)


@dataclass(frozen=True)
class Workflow:
    name: str
    path: Path
    shown: str  # how messages name the file
    inputs: dict[str, WorkflowInput]


def workflow_file(name: str, given: Path | None) -> tuple[Path, str]:
    if given is not None:
        return given, str(given)
    return WORKFLOWS_DIR / f"{name}.cwl", f"workflows/{name}.cwl"


def load_workflow(name: str, given: Path | None = None) -> Workflow:
    path, shown = workflow_file(name, given)
    if not path.is_file():
        hint = "" if given else "; outside a checkout, give the workflow file with --workflow PATH"
        raise GcmlmError(f"no such workflow file{hint}", shown)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise GcmlmError(f"not readable as YAML: {problem}", shown) from None
    process = main_process(doc)
    if not isinstance(process, dict) or "inputs" not in process:
        raise GcmlmError("not a CWL process with inputs", shown)
    inputs = [parse_input(key, spec) for key, spec in input_entries(process["inputs"])]
    return Workflow(name, path, shown, {i.name: i for i in inputs})


def main_process(doc: Any) -> Any:
    """The document itself, or a packed document's `#main` process."""
    if isinstance(doc, dict) and "$graph" in doc:
        return next((p for p in doc["$graph"] if str(p.get("id", "")).lstrip("#") == "main"), None)
    return doc


def input_entries(inputs: Any) -> list[tuple[str, Any]]:
    """(name, spec) pairs from CWL's map form (`name: spec`) or list form (`- id: name`)."""
    if isinstance(inputs, dict):
        return list(inputs.items())
    return [(str(spec["id"]), spec) for spec in inputs]


def parse_input(key: str, spec: Any) -> WorkflowInput:
    name = key.rsplit("/", 1)[-1].lstrip("#")  # packed ids look like "#main/use_gpu"
    if not isinstance(spec, dict) or ("type" not in spec and "id" not in spec):
        return WorkflowInput(name, spec)  # short form, `name: int?`
    doc = spec.get("doc", "")
    doc = " ".join(doc) if isinstance(doc, list) else str(doc)
    return WorkflowInput(name, spec.get("type", "Any"), spec.get("default", NO_DEFAULT), " ".join(doc.split()))


# ---------------------------------------------------------------------------------------------
# CWL types: how to name them and whether a value fits


class Misfit(Exception):
    """A value that does not fit an input's type; the text says what was expected."""


def is_optional(cwl_type: Any) -> bool:
    if isinstance(cwl_type, str):
        return cwl_type.endswith("?") or cwl_type == "null"
    if isinstance(cwl_type, list):
        return "null" in cwl_type
    return False


def short_name(symbol: str) -> str:
    """Enum symbols of packed documents are ids ("#main/policy/fail"); users write "fail"."""
    return str(symbol).rsplit("/", 1)[-1].lstrip("#")


def type_label(cwl_type: Any) -> str:
    if isinstance(cwl_type, str):
        return cwl_type
    if isinstance(cwl_type, list):
        kinds = [type_label(t) for t in cwl_type if t != "null"]
        label = kinds[0] if len(kinds) == 1 else "(" + " | ".join(kinds) + ")"
        return label + "?" if "null" in cwl_type else label
    if isinstance(cwl_type, dict):
        if cwl_type.get("type") == "array":
            return type_label(cwl_type.get("items", "Any")) + "[]"
        if cwl_type.get("type") == "enum":
            return "enum(" + "|".join(short_name(s) for s in cwl_type.get("symbols", [])) + ")"
        return str(cwl_type.get("type", "record"))
    return str(cwl_type)


def fit_value(value: Any, cwl_type: Any, raw: str | None, job_dir: Path) -> Any:
    """`value` as the job should hold it for an input of `cwl_type`, or Misfit.

    `raw` is the text the user wrote (for the top-level value): a string input takes it as
    written, so `fold=0` stays "0" and `name=yes` stays "yes" (YAML would read 0 and true).
    """
    if isinstance(cwl_type, str) and cwl_type.endswith("?"):
        return fit_value(value, ["null", cwl_type[:-1]], raw, job_dir)
    if isinstance(cwl_type, str) and cwl_type.endswith("[]"):
        return fit_value(value, {"type": "array", "items": cwl_type[:-2]}, raw, job_dir)
    if isinstance(cwl_type, list):
        return fit_union(value, cwl_type, raw, job_dir)
    if isinstance(cwl_type, dict):
        return fit_composite(value, cwl_type, raw, job_dir)
    return fit_simple(value, cwl_type, raw, job_dir)


def fit_union(value: Any, types: list, raw: str | None, job_dir: Path) -> Any:
    if value is None and "null" in types:
        return None
    options = [t for t in types if t != "null"]
    if len(options) == 1:  # `File?`, `int[]?`: the one type's own message says more
        return fit_value(value, options[0], raw, job_dir)
    for option in options:
        try:
            return fit_value(value, option, raw, job_dir)
        except Misfit:
            continue
    raise Misfit(f"expected {type_label(options)}")


def fit_composite(value: Any, cwl_type: dict, raw: str | None, job_dir: Path) -> Any:
    kind = cwl_type.get("type")
    if kind == "array":
        if not isinstance(value, list):
            items = type_label(cwl_type["items"])
            raise Misfit(f"expected a list of {items}, written [v1, v2, ...]")
        return [fit_value(item, cwl_type["items"], None, job_dir) for item in value]
    if kind == "enum":
        symbols = [short_name(s) for s in cwl_type.get("symbols", [])]
        written = value if isinstance(value, str) or raw is None else raw  # `off` is a symbol, not false
        if written in symbols:
            return written
        raise Misfit(f"expected one of {', '.join(symbols)}")
    return value  # records and other rarities: cwltool checks them


def fit_simple(value: Any, cwl_type: str, raw: str | None, job_dir: Path) -> Any:
    if cwl_type == "Any":
        return value
    if cwl_type == "null":
        if value is None:
            return None
        raise Misfit("expected null")
    if cwl_type == "boolean":
        if isinstance(value, bool):
            return value
        raise Misfit("expected true or false")
    if cwl_type in ("int", "long"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Misfit("expected a whole number")
    if cwl_type in ("float", "double"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise Misfit("expected a number")
    if cwl_type == "string":
        return fit_string(value, raw)
    if cwl_type in ("File", "Directory"):
        return fit_path(value, cwl_type, job_dir)
    return value  # a type this writer does not know (e.g. a SchemaDef name): cwltool checks it


def fit_string(value: Any, raw: str | None) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return raw if raw is not None else str(value)
    raise Misfit("expected text")


def fit_path(value: Any, cls: str, job_dir: Path) -> dict:
    if isinstance(value, dict) and value.get("class") == cls:
        return value  # a CWL File/Directory object, as given
    if not isinstance(value, str):
        raise Misfit(f"expected the path of a {cls.lower()}")
    path = Path(value)
    if not (path.is_file() if cls == "File" else path.is_dir()):
        raise Misfit(f"no such {cls.lower()}: {value}")
    return cwl_path(path, job_dir, cls)


# ---------------------------------------------------------------------------------------------
# --set NAME=VALUE


def parse_set(pair: str) -> tuple[str, str]:
    name, sep, raw = pair.partition("=")
    if not sep or not name:
        raise GcmlmError(f"--set expects name=value, got '{pair}'")
    return name.strip(), raw


def closest_names(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f"closest: {', '.join(close)}" if close else f"its inputs: {', '.join(names)}"


def set_value(workflow: Workflow, pair: str, job_dir: Path) -> tuple[str, Any]:
    """One checked --set: the input exists in the workflow and the value fits its type."""
    name, raw = parse_set(pair)
    wanted = workflow.inputs.get(name)
    if wanted is None:
        raise GcmlmError(f"--set {name}: {workflow.name} has no input '{name}'; "
                         f"{closest_names(name, list(workflow.inputs))}", workflow.shown)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # text that is not YAML (e.g. "a: b: c"), as written
    try:
        return name, fit_value(value, wanted.type, raw, job_dir)
    except Misfit as exc:
        raise GcmlmError(f"--set {name}={raw}: {name} is {type_label(wanted.type)}; {exc}",
                         workflow.shown) from None


def apply_sets(job: dict, workflow: Workflow, pairs: list[str], job_dir: Path) -> dict:
    for pair in pairs:
        name, value = set_value(workflow, pair, job_dir)
        job[name] = value
    return job


# ---------------------------------------------------------------------------------------------
# Jobs from the cohort manifest, per workflow


def cwl_path(path: str | Path, job_dir: Path, cls: str = "File") -> dict:
    path = Path(path)
    if cls == "File" and path.is_dir():
        cls = "Directory"  # a DICOM series folder
    return {"class": cls, "path": os.path.relpath(path, job_dir)}


def choose_patients(rows: list[dict], manifest: Path, what: str, patients: list[str] | None,
                    first: int | None) -> list[dict]:
    """The rows of the chosen patients (--patients), or of the first N patients (--first)."""
    if patients:
        missing = sorted(set(patients) - {row["patient_id"] for row in rows})
        if missing:
            raise GcmlmError(f"no {what} for patient(s) {', '.join(missing)}", manifest)
        rows = [row for row in rows if row["patient_id"] in patients]
    if first:
        keep = list(dict.fromkeys(row["patient_id"] for row in rows))[:first]
        rows = [row for row in rows if row["patient_id"] in keep]
    return rows


def radiology_train_job(args: argparse.Namespace, job_dir: Path) -> dict:
    labelled = [row for row in rows_of_kind(read_manifest(args.manifest), "ct") if row["label"]]
    cts = choose_patients(labelled, args.manifest, "labelled CT", args.patients, args.first)
    if not cts:
        raise GcmlmError("no CT rows with a label to train on", args.manifest)
    return {
        "images": [cwl_path(row["path"], job_dir) for row in cts],
        "labels": [cwl_path(row["label"], job_dir) for row in cts],
        "case_ids": [row["patient_id"] for row in cts],
    }


def cohort_rows(args: argparse.Namespace, kinds: tuple[str, ...]) -> dict[str, list[dict]]:
    """The chosen patients' manifest rows by kind; every kind must have some."""
    rows = [row for row in read_manifest(args.manifest) if row["kind"] in kinds]
    rows = choose_patients(rows, args.manifest, "manifest rows", args.patients, args.first)
    by_kind = {kind: rows_of_kind(rows, kind) for kind in kinds}
    if not all(by_kind.values()):
        raise GcmlmError(f"the manifest needs {' and '.join(kinds)} rows for {args.workflow}", args.manifest)
    return by_kind


def radiology_part(cts: list[dict], model: Path, job_dir: Path, keys: tuple[str, str, str]) -> dict:
    """CTs, their patient IDs and the model, under the names `keys` the workflow gives them."""
    images, ids, model_key = keys
    return {
        images: [cwl_path(row["path"], job_dir) for row in cts],
        ids: [row["patient_id"] for row in cts],
        model_key: cwl_path(model, job_dir),
    }


def pathology_part(slides: list[dict], manifest: Path, job_dir: Path) -> dict:
    return {"slides": [cwl_path(row["path"], job_dir) for row in slides], "slide_map": cwl_path(manifest, job_dir)}


def radiology_job(args: argparse.Namespace, job_dir: Path) -> dict:
    return radiology_part(cohort_rows(args, ("ct",))["ct"], args.model, job_dir, ("ct_images", "patient_ids", "model"))


def pathology_job(args: argparse.Namespace, job_dir: Path) -> dict:
    job = pathology_part(cohort_rows(args, ("slide",))["slide"], args.manifest, job_dir)
    if args.clinical is not None:  # the outcome table of slide_model abmil (mil-train's labels)
        job["labels"] = cwl_path(args.clinical, job_dir)
    return job


def fusion_job(args: argparse.Namespace, job_dir: Path) -> dict:
    return {}  # three patient tables, not a manifest: every input comes from --set


def gc_mlm_job(args: argparse.Namespace, job_dir: Path) -> dict:
    rows = cohort_rows(args, ("ct", "slide"))
    job = radiology_part(rows["ct"], args.model, job_dir, ("ct_images", "ct_patient_ids", "nnunet_model"))
    job.update(pathology_part(rows["slide"], args.manifest, job_dir))
    job["clinical"] = cwl_path(args.clinical, job_dir)
    labels = report_labels(rows["ct"])
    if labels:
        job["ct_labels"] = [cwl_path(path, job_dir) for path in labels]
    return job


def report_labels(cts: list[dict]) -> list[str]:
    """The manifest's CT label maps for the run report, which matches them to masks by file name
    (<patient_id>.nii.gz); a label named otherwise is left out, with a warning."""
    named, other = [], []
    for row in cts:
        if row["label"]:
            (named if Path(row["label"]).name == f"{row['patient_id']}.nii.gz" else other).append(row)
    if other:
        log.warning("%d CT label map(s) are not named <patient_id>.nii.gz (e.g. %s): the run report shows no "
                    "mask/label agreement for them", len(other), Path(other[0]["label"]).name)
    return [row["label"] for row in named]


BUILDERS = {
    "radiology-train": radiology_train_job,
    "radiology": radiology_job,
    "pathology": pathology_job,
    "fusion": fusion_job,
    "gc-mlm": gc_mlm_job,
}


# ---------------------------------------------------------------------------------------------
# The job file: the values, then the inputs left at their defaults as comments


def inline_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def input_comment(item: WorkflowInput) -> str:
    value = inline_yaml(item.default) if item.default is not NO_DEFAULT else ""
    note = type_label(item.type) + (", REQUIRED" if item.required else "")
    doc = item.doc if len(item.doc) <= 90 else item.doc[:87] + "..."
    return f"# {item.name}: {value}".rstrip() + f"  # {note}" + (f": {doc}" if doc else "")


def render_job(workflow: Workflow, job: dict, out: Path) -> str:
    head = [
        f"# CWL job for {workflow.shown}, written by gcmlm jobs {workflow.name}.",
        f"# Run: cwltool --enable-ext {workflow.shown} {out}",
    ]
    rest = [item for name, item in workflow.inputs.items() if name not in job]
    tail = []
    if rest:
        tail = ["", "# The workflow's other inputs, at their defaults (uncomment to set, or rerun with",
                "# --set NAME=VALUE); REQUIRED ones have no default and must be set:"]
        tail += [input_comment(item) for item in rest]
    body = yaml.safe_dump(job, sort_keys=False) if job else ""
    return "\n".join(head) + "\n" + body + "\n".join(tail) + ("\n" if tail else "")


# ---------------------------------------------------------------------------------------------
# Command line


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="job file to write (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another workflow input (checked against the workflow; repeatable)")
    parser.add_argument("--workflow", dest="workflow_file", type=Path, metavar="PATH",
                        help="the workflow's .cwl file (default: the checkout's workflows/<name>.cwl)")


def add_patient_choice(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--patients", nargs="+", help=f"only these patients (default: every {what})")
    parser.add_argument("--first", type=int, help=f"only the first N patients of the manifest with a {what}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=SUMMARY, epilog=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="workflow", required=True, metavar="WORKFLOW")
    parsers = {name: sub.add_parser(name, help=f"job for workflows/{name}.cwl") for name in BUILDERS}
    for name in ("radiology-train", "radiology", "pathology", "gc-mlm"):
        parsers[name].add_argument("--manifest", required=True, type=Path, help="cohort manifest (CSV)")
    add_patient_choice(parsers["radiology-train"], "labelled CT")
    for name in ("radiology", "pathology", "gc-mlm"):
        add_patient_choice(parsers[name], "row")
    for name in ("radiology", "gc-mlm"):
        parsers[name].add_argument("--model", required=True, type=Path, help="nnU-Net model zip")
    parsers["gc-mlm"].add_argument("--clinical", required=True, type=Path, help="clinical patient table (CSV)")
    parsers["pathology"].add_argument("--clinical", type=Path,
                                      help="patient table with the outcome, for slide_model=abmil (the job's labels)")
    for p in parsers.values():
        add_common_options(p)
    return parser


def check_slide_model(workflow: Workflow, job: dict) -> None:
    """slide_model abmil trains a MIL model in pathology.cwl: it needs the outcome (gc-mlm.cwl
    always has it: clinical and label)."""
    if job.get("slide_model") != "abmil" or not {"labels", "label"} <= set(workflow.inputs):
        return
    missing = [name for name in ("labels", "label")
               if job.get(name) is None and workflow.inputs[name].default in (None, NO_DEFAULT)]
    if missing:
        how = {"labels": "--clinical C.csv (or --set labels=C.csv)", "label": "--set label=COLUMN"}
        raise GcmlmError("slide_model abmil trains a MIL model on the outcome: give "
                         + " and ".join(how[m] for m in missing), workflow.shown)


def write_job(args: argparse.Namespace) -> Path:
    workflow = load_workflow(args.workflow, args.workflow_file)
    job_dir = args.out.resolve().parent
    job = apply_sets(BUILDERS[args.workflow](args, job_dir), workflow, args.set, job_dir)
    check_slide_model(workflow, job)
    return write_text(args.out, render_job(workflow, job, args.out))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        write_job(args)
    except GcmlmError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
