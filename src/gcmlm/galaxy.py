"""Galaxy tool wrappers (``tools/<stage>/<stage>.xml``) generated from the option contract.

Each wrapper is written from three sources and nothing else: the stage's option contract
(:mod:`gcmlm.contract`, read from its argparse parser), the small per-stage table
:data:`EXTRAS` below (output files, datatypes, citations: what argparse cannot say), and files
already in the repository (``constraints.txt`` for the requirement versions, the tool's
``README.md`` for the help, its cwltests for the ``<tests>``). ``make galaxy`` (``python -m
gcmlm.galaxy``) rewrites them; ``tests/unit/test_galaxy.py`` fails when a checked-in wrapper
differs from what this module writes.

Galaxy has no folder datasets that a tool can read or write as a folder, so a folder the CLI
reads (``INPUT_DIR``) is a ``zip`` dataset unpacked by the command, and a folder it writes is a
``zip`` (for the next tool) plus the files of it that a user looks at, one ``<data>`` each.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import yaml

from gcmlm import __version__
from gcmlm.contract import IoKind, Option, StageContract, UndecidedOption, ValueType, stage_contract
from gcmlm.stages import BY_NAME, STAGES

REPO = Path(__file__).resolve().parents[2]
PROFILE = "23.0"  # the Galaxy release whose tool format the wrappers use
IMAGE = "ghcr.io/gcmlm/{stage}:{version}"  # the same image as the CWL tool's DockerRequirement
ALL = "*"

# Options neither the CWL tools nor the Galaxy wrappers expose (tests/unit/test_contract.py reads it).
NOT_EXPOSED = {
    (ALL, "--verbose"): "log level of the CLI; a tool logs at the default level",
    (ALL, "--quiet"): "log level of the CLI; a tool logs at the default level",
    ("patch-embed", "--force"): "a tool always writes a fresh output folder, so there is nothing to resume",
    ("nnunet-train", "--results"): "nnU-Net's working folder; the tool's product is the model zip",
}
# Options only the Galaxy wrappers leave out (the CWL tools expose them).
NOT_IN_GALAXY = {
    ("nnunet-dataset", "--manifest"): "its paths are relative to a cohort folder; Galaxy datasets have none",
    ("radiomics-extract", "--manifest"): "as nnunet-dataset's",
}
# Defaults computed from the machine at import time: a wrapper must not copy them.
MACHINE_DEFAULTS = {("patch-embed", "--num-workers"), ("nnunet-plan", "--num-processes")}
# List options of which a wrapper takes one value (one slide / patient per job, as in the CWL).
SINGLE_VALUE = {("wsi-tile", "--slide"), ("radiomics-extract", "--image"),
                ("radiomics-extract", "--mask"), ("radiomics-extract", "--patient-id")}

# Galaxy datatypes (all in Galaxy's datatypes_conf.xml.sample; Galaxy has no NIfTI type, so
# NIfTI is `gz` / `binary`). Each name below is the datatype list of one kind of file.
NIFTI = "gz,binary"
CT_IMAGE = "gz,binary,nrrd,zip"  # NIfTI, NRRD, or a zip of a DICOM series folder
SLIDE = "svs,tiff,tif,ndpi,mrxs,scn,bif,vms,ome.tiff,dcm"
TABLE = "csv"
KEY_PACKAGES = {  # the packages behind each branch's results, with versions from constraints.txt
    "radiology": ["SimpleITK", "pyradiomics", "nnunetv2"],
    "pathology": ["openslide-python", "openslide-bin", "large-image", "torch", "timm"],
    "fusion": ["scikit-learn", "skops", "neuroCombat"],
    "report": ["matplotlib"],
    "demo": ["SimpleITK", "tifffile"],
}
DOI = {
    "nnU-Net": "10.1038/s41592-020-01008-z",
    "PyRadiomics": "10.1158/0008-5472.CAN-17-0339",
    "CLAM": "10.1038/s41551-020-00682-w",
    "OpenSlide": "10.4103/2153-3539.119005",
    "UNI": "10.1038/s41591-024-02857-3",
}


@dataclass(frozen=True)
class Out:
    """One Galaxy output: a file the command leaves in the working folder."""

    name: str  # the CWL tool's output id, so that cwltests map onto wrapper tests
    path: str  # from_work_dir, or a discover pattern's folder for a collection
    format: str
    label: str
    when: str = ""  # a Cheetah condition on the inputs; the output exists only when it holds
    collection: str = ""  # a regular expression: the output is a list of the files it matches
    glob: str = ""  # the one file a folder output holds for this job, moved to `path` after the run


@dataclass(frozen=True)
class Extras:
    """What argparse cannot say about a stage: where outputs go, datatypes, citations."""

    out_paths: dict[str, str]  # output flag -> the file or folder name the command passes
    outputs: tuple[Out, ...]
    formats: dict[str, str] = field(default_factory=dict)  # input flag -> datatypes
    citations: tuple[str, ...] = ()  # keys of DOI
    out_when: dict[str, str] = field(default_factory=dict)  # output flag -> Cheetah condition
    zip_dirs: tuple[str, ...] = ()  # output folders also returned as a zip for the next tool
    unzip: tuple[str, ...] = ()  # file-or-folder inputs whose zip datasets are unpacked (folders always are)


EXTRAS: dict[str, Extras] = {
    "ct-preprocess": Extras(
        out_paths={"--out": "ct.nii.gz", "--mask-out": "mask.nii.gz", "--report": "ct_preprocess_report.json"},
        out_when={"--mask-out": "$mask"},
        formats={"--image": CT_IMAGE, "--mask": "gz,binary,nrrd"}, unzip=("--image",),
        outputs=(Out("image_out", "ct.nii.gz", "gz", "${tool.name}: CT (NIfTI)"),
                 Out("mask_out", "mask.nii.gz", "gz", "${tool.name}: mask (NIfTI)", when="mask"),
                 Out("report", "ct_preprocess_report.json", "json", "${tool.name}: report"))),
    "nnunet-dataset": Extras(
        out_paths={"--out": "out"}, zip_dirs=("--out",), citations=("nnU-Net",),
        formats={"--images": NIFTI, "--labels": NIFTI, "--test-images": NIFTI},
        outputs=(Out("dataset", "out.zip", "zip", "${tool.name}: nnU-Net raw dataset (zip)"),)),
    "nnunet-plan": Extras(
        out_paths={"--out": "out"}, zip_dirs=("--out",), citations=("nnU-Net",),
        formats={"--raw": "zip"},
        outputs=(Out("preprocessed", "out.zip", "zip", "${tool.name}: preprocessed dataset (zip)"),)),
    "nnunet-train": Extras(
        out_paths={"--out": "nnunet_model.zip", "--validation-summary": "validation_summary.json"},
        citations=("nnU-Net",), formats={"--preprocessed": "zip"},
        outputs=(Out("model", "nnunet_model.zip", "zip", "${tool.name}: model (zip)"),
                 Out("validation_summary", "validation_summary.json", "json", "${tool.name}: validation"))),
    "nnunet-predict": Extras(
        out_paths={"--out": "masks", "--qa-dir": "qa"}, citations=("nnU-Net",),
        formats={"--model": "zip", "--images": NIFTI},
        outputs=(Out("masks", "masks", "gz", "${tool.name}: masks", collection=r"(?P<designation>.+)\.nii\.gz"),
                 Out("qa_images", "qa", "png", "${tool.name}: QA overlays", collection=r"(?P<designation>.+)\.png"))),
    "radiomics-extract": Extras(
        out_paths={"--out": "radiomics.csv", "--diagnostics": "radiomics_diagnostics.json"},
        out_when={"--diagnostics": "not $concat"}, citations=("PyRadiomics",),
        formats={"--image": CT_IMAGE, "--mask": "gz,binary,nrrd", "--concat": TABLE, "--params": "yaml,json"},
        outputs=(Out("features", "radiomics.csv", TABLE, "${tool.name}: features"),
                 Out("diagnostics", "radiomics_diagnostics.json", "json", "${tool.name}: diagnostics",
                     when="not concat"))),
    "wsi-tile": Extras(
        out_paths={"--out": "out"}, citations=("CLAM", "OpenSlide"),
        formats={"--slide": SLIDE, "--mpp-csv": TABLE, "--preset": TABLE},
        outputs=(Out("coords", "coords.h5", "h5", "${tool.name} on ${on_string}: patch coordinates", glob="out/patches/*.h5"),
                 Out("mask_png", "tissue.png", "png", "${tool.name} on ${on_string}: tissue mask", glob="out/masks/*.png"),
                 Out("stitch_png", "patches.png", "png", "${tool.name} on ${on_string}: patches", glob="out/stitches/*.png"),
                 Out("summary", "summary.json", "json", "${tool.name} on ${on_string}: summary", glob="out/*.json"))),
    "patch-embed": Extras(
        out_paths={"--out": "out"}, citations=("UNI", "CLAM", "OpenSlide"),
        formats={"--slide": SLIDE, "--coords": "h5", "--checkpoint": "binary,safetensors"},
        outputs=(Out("features_h5", "features.h5", "h5", "${tool.name} on ${on_string}: features (h5)",
                     glob="out/h5_files/*.h5"),
                 Out("features_pt", "features.pt", "binary", "${tool.name} on ${on_string}: features (pt)",
                     glob="out/pt_files/*.pt"))),
    "slide-pool": Extras(
        out_paths={"--out": "pathology_features.csv", "--report": "slide_pool_report.json",
                   "--slide-table": "slide_features.csv"},
        citations=("CLAM",), formats={"--features": "h5", "--slide-map": TABLE},
        outputs=(Out("patient_table", "pathology_features.csv", TABLE, "${tool.name}: patient features"),
                 Out("slide_table", "slide_features.csv", TABLE, "${tool.name}: slide features"),
                 Out("report", "slide_pool_report.json", "json", "${tool.name}: report"))),
    "mil-train": Extras(
        out_paths={"--out": "mil_model"}, zip_dirs=("--out",), citations=("CLAM",),
        formats={"--features": "h5", "--slide-map": TABLE, "--labels": TABLE},
        outputs=(Out("model_dir", "mil_model.zip", "zip", "${tool.name}: MIL model (zip)"),
                 Out("training", "mil_model/training.json", "json", "${tool.name}: training summary"),
                 Out("learning_curve", "mil_model/learning_curve.png", "png", "${tool.name}: learning curve"))),
    "mil-predict": Extras(
        out_paths={"--out": "mil_risk.csv", "--slide-out": "mil_slide_risk.csv", "--attention-dir": "attention"},
        formats={"--model": "zip", "--features": "h5", "--slide-map": TABLE},
        outputs=(Out("risk", "mil_risk.csv", TABLE, "${tool.name}: patient risks"),
                 Out("slide_risk", "mil_slide_risk.csv", TABLE, "${tool.name}: slide risks"),
                 Out("attention", "attention", "h5", "${tool.name}: attention",
                     collection=r"(?P<designation>.+)\.h5"))),
    "mil-heatmap": Extras(
        out_paths={"--out": "heatmap.png", "--geojson": "attention.geojson"}, citations=("CLAM", "OpenSlide"),
        formats={"--attention": "h5", "--slide": SLIDE},
        outputs=(Out("heatmap", "heatmap.png", "png", "${tool.name} on ${on_string}: attention heatmap"),
                 Out("regions", "attention.geojson", "json", "${tool.name} on ${on_string}: top-attention regions"))),
    "fusion-merge": Extras(
        out_paths={"--out": "merged.csv", "--report": "join_report.json"}, formats={"--tables": TABLE},
        outputs=(Out("merged", "merged.csv", TABLE, "${tool.name}: merged table"),
                 Out("report", "join_report.json", "json", "${tool.name}: join report"))),
    "fusion-train": Extras(
        out_paths={"--out": "fusion_model"}, zip_dirs=("--out",), formats={"--table": TABLE, "--mil-features": "h5", "--slide-map": TABLE},
        outputs=(Out("model", "fusion_model.zip", "zip", "${tool.name}: model (zip)"),
                 Out("metrics", "fusion_model/metrics.json", "json", "${tool.name}: metrics"),
                 Out("oof_predictions", "fusion_model/oof_predictions.csv", TABLE, "${tool.name}: out-of-fold predictions"),
                 Out("selected_features", "fusion_model/selected_features.csv", TABLE, "${tool.name}: selected features"),
                 Out("model_card", "fusion_model/model_card.json", "json", "${tool.name}: model card"),
                 Out("report", "fusion_model/report.html", "html", "${tool.name}: report"))),
    "fusion-evaluate": Extras(
        out_paths={"--out": "evaluation"}, unzip=("--model",), formats={"--model": "zip,binary", "--table": TABLE},
        outputs=(Out("metrics", "evaluation/metrics.json", "json", "${tool.name}: metrics"),
                 Out("predictions", "evaluation/predictions.csv", TABLE, "${tool.name}: predictions"),
                 Out("report", "evaluation/report.html", "html", "${tool.name}: report"),
                 Out("plots", "evaluation", "png", "${tool.name}: plots", collection=r"(?P<designation>.+)\.png"))),
    "fusion-predict": Extras(
        out_paths={"--out": "predictions.csv"}, unzip=("--model",), formats={"--model": "zip,binary", "--table": TABLE},
        outputs=(Out("predictions", "predictions.csv", TABLE, "${tool.name}: predictions"),)),
    "run-report": Extras(
        out_paths={"--out": "index.html"},
        formats={"--results": "zip", "--manifest": TABLE, "--labels": NIFTI},
        outputs=(Out("index_html", "index.html", "html", "${tool.name}: run report"),)),
    "demo-cohort": Extras(
        out_paths={"--out": "demo-cohort"}, zip_dirs=("--out",),
        outputs=(Out("cohort", "demo-cohort.zip", "zip", "${tool.name}: cohort (zip)"),
                 Out("manifest", "demo-cohort/manifest.csv", TABLE, "${tool.name}: manifest"),
                 Out("clinical", "demo-cohort/clinical.csv", TABLE, "${tool.name}: clinical table"),
                 Out("truth", "demo-cohort/truth.json", "json", "${tool.name}: truth"))),
}

GCMLM_BIBTEX = """@misc{gcmlm,
  title = {gcmlm: containerized CWL and Galaxy tools for radiopathomics},
  author = {{gcmlm developers}},
  url = {https://github.com/gcmlm/gcmlm}
}"""


def listed(table, stage: str, flag: str) -> bool:
    return (stage, flag) in table or (ALL, flag) in table


def exposed_options(contract: StageContract) -> list[Option]:
    """The options a wrapper offers, in the parser's order."""
    return [opt for opt in contract.options
            if not listed(NOT_EXPOSED, contract.stage, opt.flag) and not listed(NOT_IN_GALAXY, contract.stage, opt.flag)]


def pinned_versions(constraints: Path = REPO / "constraints.txt") -> dict[str, str]:
    """{normalised package name: version} from a pip constraints file."""
    versions = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            versions[normalise(name)] = version.strip()
    return versions


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(stage: str) -> list[tuple[str, str]]:
    """(package, version) the stage's image installs: gcmlm and its branch's key packages."""
    pins = pinned_versions()
    return [("gcmlm", __version__)] + [(name, pins[normalise(name)]) for name in KEY_PACKAGES[BY_NAME[stage].branch]]


PROJECT_URL = {"gcmlm": "https://github.com/gcmlm/gcmlm"}  # packages not on PyPI under their own name


def software_requirement_yaml(stage: str) -> str:
    """The CWL tool's SoftwareRequirement hint: the same packages and versions as the Galaxy wrapper."""
    lines = ["  SoftwareRequirement:", "    packages:"]
    for name, version in requirements(stage):
        spec = PROJECT_URL.get(name, f"https://pypi.org/project/{name}/")
        lines += [f"      {name}:", f'        version: ["{version}"]', f'        specs: ["{spec}"]']
    return "\n".join(lines) + "\n"


SOFTWARE_REQUIREMENT = re.compile(r"^  SoftwareRequirement:\n(?:^ {4,}.*\n)+", re.M)


def with_software_requirement(cwl_text: str, stage: str) -> str:
    """The CWL text with its SoftwareRequirement hint replaced by the generated one."""
    return SOFTWARE_REQUIREMENT.sub(lambda _: software_requirement_yaml(stage), cwl_text, count=1)


# ---------------------------------------------------------------- inputs


def param_name(opt: Option) -> str:
    return opt.dest


def _attrs(**attrs) -> str:
    return "".join(f" {k.rstrip('_')}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None)


def _help(opt: Option, stage: str) -> str:
    text = opt.help.replace("%(default)s", str(opt.default))
    if opt.default not in (None, False, True) and (stage, opt.flag) not in MACHINE_DEFAULTS and "default" not in text:
        text += f" (default {opt.default})"
    return text


def input_params(stage: str, opt: Option) -> list[str]:
    """The <param> element(s) for one exposed input or value option."""
    name, label, help_ = param_name(opt), opt.flag, _help(opt, stage)
    optional = None if opt.required else "true"
    single = (stage, opt.flag) in SINGLE_VALUE
    if opt.io.is_input:
        fmt = EXTRAS[stage].formats[opt.flag]
        multiple = "true" if opt.is_list and not single else None
        params = [f"<param{_attrs(name=name, type='data', format=fmt, multiple=multiple, optional=optional, label=label, help=help_)}/>"]
        if opt.io is IoKind.INPUT_FILE_OR_NAME:  # or the name of a file shipped with gcmlm
            params.append(f"<param{_attrs(name=name + '_name', type='text', optional='true', label=label + ' (shipped name)', help='Used when no file is given: ' + help_)}/>")
        return params
    if opt.is_flag:
        return [f"<param{_attrs(name=name, type='boolean', truevalue=opt.flag, falsevalue='', checked='false', label=label, help=help_)}/>"]
    if opt.type is ValueType.BOOL:
        options = "".join(f'\n    <option value="{v}">{v}</option>' for v in ("true", "false"))
        return [f"<param{_attrs(name=name, type='select', optional='true', label=label, help=help_)}>{options}\n</param>"]
    if opt.choices is not None:
        multiple = "true" if opt.is_list else None
        options = "".join(f"\n    <option value={quoteattr(str(c))}>{escape(str(c))}</option>" for c in opt.choices)
        return [f"<param{_attrs(name=name, type='select', multiple=multiple, optional=optional, label=label, help=help_)}>{options}\n</param>"]
    if opt.is_list and not single:  # several numbers or words, separated by spaces
        hint = "space-separated values; " + help_
        return [f"<param{_attrs(name=name, type='text', optional=optional, label=label, help=hint)}>\n    "
                f"<validator type=\"regex\" message=\"values separated by spaces\">[A-Za-z0-9_.+ -]*</validator>\n</param>"]
    kind = {ValueType.INT: "integer", ValueType.FLOAT: "float"}.get(opt.type, "text")
    value = "" if kind != "text" else None
    return [f"<param{_attrs(name=name, type=kind, value=value, optional=optional, label=label, help=help_)}/>"]


# ---------------------------------------------------------------- command


def _set(name: str) -> str:
    """A Cheetah condition: the optional value was given (Galaxy renders an unset one as '' or None)."""
    return f"str(${name}) not in ('', 'None')"


def command_part(stage: str, opt: Option) -> str:
    """The Cheetah lines that pass one option to the CLI."""
    name, flag = param_name(opt), opt.flag
    single = (stage, flag) in SINGLE_VALUE
    if opt.io.is_output:
        path = EXTRAS[stage].out_paths[flag]
        when = EXTRAS[stage].out_when.get(flag)
        line = f"{flag} '{path}'"
        return f"#if {when}\n  {line}\n#end if" if when else line
    if is_zipped_folder(stage, opt):
        return _unzipped(name, flag, opt)
    if opt.io.is_input:
        if opt.is_list and not single:
            return f"#if ${name}\n  {flag}\n  #for $f in ${name}\n    '{name}/${{f.element_identifier}}'\n  #end for\n#end if"
        passed = f"{flag} '{name}/${{{name}.element_identifier}}'"
        if opt.io is IoKind.INPUT_FILE_OR_NAME:
            return (f"#if ${name}\n  {passed}\n#elif {_set(name + '_name')}\n  {flag} '${name}_name'\n#end if")
        return passed if opt.required else f"#if ${name}\n  {passed}\n#end if"
    if opt.is_flag:
        return f"${name}"
    if opt.is_list and not single:
        sep = "','" if opt.choices is not None else ""
        split = f"str(${name}).split({sep})" if sep else f"str(${name}).split()"
        return f"#if {_set(name)}\n  {flag}\n  #for $v in {split}\n    '$v'\n  #end for\n#end if"
    passed = f"{flag} '${name}'"
    return passed if opt.required else f"#if {_set(name)}\n  {passed}\n#end if"


def _unzipped(name: str, flag: str, opt: Option) -> str:
    """A folder input arrives as a zip: unpack it and pass its single top folder (or itself)."""
    folder = f"{name}_unzipped"
    passed = (f"{flag} \"\\$(python3 -c 'import sys, os; d = sys.argv[1]; e = os.listdir(d); "
              f"print(os.path.join(d, e[0]) if len(e) == 1 and os.path.isdir(os.path.join(d, e[0])) else d)' '{folder}')\"")
    if opt.io is IoKind.INPUT_FILE_OR_DIR:  # a zip is unpacked, any other file passed as it is
        unpack = f"#if ${name}.ext == 'zip'\n  {passed}\n#else\n  {flag} '{name}/${{{name}.element_identifier}}'\n#end if"
    else:
        unpack = passed
    return unpack if opt.required else f"#if ${name}\n  {unpack}\n#end if"


def is_zipped_folder(stage: str, opt: Option) -> bool:
    """Whether the option's folder arrives as a zip dataset that the command unpacks."""
    return opt.io is IoKind.INPUT_DIR or (opt.io is IoKind.INPUT_FILE_OR_DIR and opt.flag in EXTRAS[stage].unzip)


def link_steps(stage: str, options: list[Option]) -> list[str]:
    """Input files linked under their dataset names: stages take slide / case / patient IDs from file names."""
    steps = []
    for opt in options:
        if not opt.io.is_input or (opt.io is IoKind.INPUT_DIR):
            continue
        name = param_name(opt)
        if opt.is_list and (stage, opt.flag) not in SINGLE_VALUE:
            steps.append(f"#for $f in ${name}\nmkdir -p '{name}' && ln -s '$f' '{name}/${{f.element_identifier}}' &&\n#end for")
        else:
            link = f"mkdir -p '{name}' && ln -s '${name}' '{name}/${{{name}.element_identifier}}' &&"
            steps.append(link if opt.required else f"#if ${name}\n{link}\n#end if")
    return steps


def unzip_steps(stage: str, options: list[Option]) -> list[str]:
    steps = []
    for opt in options:
        if not is_zipped_folder(stage, opt):
            continue
        step = f"python3 -m zipfile -e '${opt.dest}' '{opt.dest}_unzipped' &&"
        condition = [] if opt.io is IoKind.INPUT_DIR else [f"${opt.dest}.ext == 'zip'"]
        if not opt.required:
            condition.insert(0, f"${opt.dest}")
        steps.append(f"#if {' and '.join(condition)}\n{step}\n#end if" if condition else step)
    return steps


def command(contract: StageContract) -> str:
    stage = contract.stage
    options = exposed_options(contract)
    lines = link_steps(stage, options) + unzip_steps(stage, options) + [f"gcmlm {stage}"]
    lines += [command_part(stage, opt) for opt in options]
    for flag in EXTRAS[stage].zip_dirs:  # the folder, zipped for the next tool
        folder = EXTRAS[stage].out_paths[flag]
        lines.append(f"&& python3 -m zipfile -c '{folder}.zip' '{folder}'/*")
    lines += [f"&& mv {out.glob} '{out.path}'" for out in EXTRAS[stage].outputs if out.glob]
    return "\n".join(lines)


# ---------------------------------------------------------------- outputs, tests, help


def outputs_xml(stage: str) -> list[str]:
    xml = []
    for out in EXTRAS[stage].outputs:
        filter_ = f"\n    <filter>{escape(out.when)}</filter>" if out.when else ""
        if out.collection:
            pattern = quoteattr(out.collection)
            xml.append(f'<collection name="{out.name}" type="list" label={quoteattr(out.label)}>\n'
                       f'    <discover_datasets pattern={pattern} directory="{out.path}" format="{out.format}" sort_by="filename"/>'
                       f"{filter_}\n</collection>")
        else:
            xml.append(f'<data name="{out.name}" format="{out.format}" from_work_dir="{out.path}" label={quoteattr(out.label)}'
                       + (f">{filter_}\n</data>" if filter_ else "/>"))
    return xml


def cwl_tool(stage: str) -> dict:
    return yaml.safe_load((REPO / "tools" / stage / f"{stage}.cwl").read_text())


def cwl_input_to_param(stage: str, contract: StageContract) -> dict[str, str]:
    """{CWL input id: Galaxy param name} for the inputs a wrapper test can set."""
    exposed = {opt.flag: opt for opt in exposed_options(contract) if not opt.io.is_output}
    mapping = {}
    for cwl_id, spec in cwl_tool(stage)["inputs"].items():
        prefix = (spec.get("inputBinding") or {}).get("prefix")
        opt = exposed.get(prefix) or next((o for o in exposed.values() if o.dest == cwl_id), None)
        if opt is None:
            continue
        is_name = opt.io is IoKind.INPUT_FILE_OR_NAME and "File" not in str(spec["type"])
        mapping[cwl_id] = param_name(opt) + ("_name" if is_name else "")
    for cwl_id, param in {"params_name": "params_name", "params": "params"}.items():  # radiomics' computed --params
        if stage == "radiomics-extract":
            mapping[cwl_id] = param
    return mapping


def tests_xml(contract: StageContract) -> list[str]:
    """One <test> per cwltest whose inputs the wrapper can take: same inputs, same assertions."""
    stage = contract.stage
    folder = REPO / "tools" / stage / "tests"
    cases = yaml.safe_load((folder / f"{stage}.cwltest.yml").read_text())
    mapping = cwl_input_to_param(stage, contract)
    by_param = {param_name(o): o for o in exposed_options(contract)}
    galaxy_outputs = {out.name: out for out in EXTRAS[stage].outputs}
    tests = []
    for case in cases:
        job = yaml.safe_load((folder / case["job"]).read_text()) or {}
        if any(key not in mapping and not key.endswith("_name") and key != "qa" for key in job):
            continue  # an input only the CWL tool has (e.g. a cohort folder)
        renamed = any(key.endswith("_name") and key not in mapping for key in job)
        params = [_test_param(mapping[k], v, by_param) for k, v in job.items() if k in mapping]
        if case.get("should_fail"):
            body = params
            head = '<test expect_failure="true">'
        else:
            checks = [_test_output(name, expected, galaxy_outputs[name], renamed)
                      for name, expected in (case.get("output") or {}).items()
                      if name in galaxy_outputs and isinstance(expected, dict) and expected.get("class") == "File"]
            expected = len([o for o in EXTRAS[stage].outputs if not o.when and not o.collection])
            head = f'<test expect_num_outputs="{_num_outputs(stage, job, mapping)}">' if expected else "<test>"
            body = params + checks
        tests.append(f"<!-- {case['id']} -->\n" + head + "".join(f"\n    {line}" for line in body) + "\n</test>")
    return tests


def _num_outputs(stage: str, job: dict, mapping: dict) -> int:
    given = {mapping[k] for k in job if k in mapping}
    count = 0
    for out in EXTRAS[stage].outputs:
        if out.when.startswith("not "):
            count += out.when[4:] not in given
        elif out.when:
            count += out.when in given
        else:
            count += 1
    return count


def _test_param(name: str, value, by_param: dict[str, Option]) -> str:
    opt = by_param.get(name.removesuffix("_name")) if name.endswith("_name") else by_param.get(name)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        files = ",".join(_test_path(v) for v in value)
        return f"<param{_attrs(name=name, value=files, ftype=_ftype(value[0]))}/>"
    if isinstance(value, dict):
        return f"<param{_attrs(name=name, value=_test_path(value), ftype=_ftype(value))}/>"
    if isinstance(value, bool):
        if opt is not None and opt.type is ValueType.BOOL:
            return f"<param{_attrs(name=name, value=str(value).lower())}/>"
        return f"<param{_attrs(name=name, value=str(value).lower())}/>"
    if isinstance(value, list):
        sep = "," if opt is not None and opt.choices is not None else " "
        return f"<param{_attrs(name=name, value=sep.join(str(v) for v in value))}/>"
    return f"<param{_attrs(name=name, value=value)}/>"


def _test_path(value: dict) -> str:
    """A test file, relative to the tool's test-data folder (tools/<stage>/test-data -> tests)."""
    return value["path"]


# Galaxy datatypes of test files by name ending (a folder is given to Galaxy as a zip).
TEST_FTYPES = {".nii.gz": "gz", ".nii": "binary", ".nrrd": "nrrd", ".csv": "csv", ".h5": "h5", ".yaml": "yaml",
               ".skops": "binary", ".tiff": "tiff", ".svs": "svs"}


def _ftype(value: dict) -> str:
    if value.get("class") == "Directory":
        return "zip"
    return next((ftype for end, ftype in TEST_FTYPES.items() if value["path"].endswith(end)), "binary")


def _test_output(name: str, expected: dict, out: Out, renamed: bool) -> str:
    checksum = expected.get("checksum")
    if checksum and not renamed:
        return f'<output name="{name}" checksum="{checksum.replace("$", "$$")}"/>'.replace("$$", "$")
    asserts = []
    if "size" in expected:
        asserts.append(f'<has_size value="{expected["size"]}"/>')
    else:
        asserts.append('<has_size min="1"/>')
    return (f'<output name="{name}">\n        <assert_contents>'
            + "".join(f"\n            {a}" for a in asserts) + "\n        </assert_contents>\n    </output>")


def help_text(stage: str) -> str:
    """The tool's README, as reST: Markdown headings and code fences turned into their reST forms."""
    lines, out, in_code = (REPO / "tools" / stage / "README.md").read_text().splitlines(), [], False
    for line in lines:
        if line.startswith("|") and not in_code:  # a Markdown table: shown as it is, as a literal block
            if not out or not out[-1].startswith("    |"):
                out += ["::", ""]
            out.append("    " + line)
            continue
        if out and out[-1].startswith("    |"):
            out.append("")
        if line.startswith("```"):
            in_code = not in_code
            out += ["::", ""] if in_code else [""]
            continue
        if in_code:
            out.append("    " + line)
        elif line.startswith("#"):
            title = line.lstrip("#").strip()
            mark = "=" if line.startswith("# ") else "-"
            out += [title, mark * len(title)]
        else:
            out.append(line)
    return "\n\n".join(_valid_rst(block) for block in "\n".join(out).strip().split("\n\n")) + "\n"


def _valid_rst(block: str) -> str:
    """The block itself if docutils reads it without complaint, else the block as a literal block."""
    import docutils.core
    import docutils.utils

    if block.startswith("::") or block.startswith("    "):
        return block
    try:
        docutils.core.publish_doctree(block, settings_overrides={"report_level": 2, "halt_level": 2,
                                                                "warning_stream": False})
        return block
    except docutils.utils.SystemMessage:
        return "::\n\n" + "\n".join("    " + line for line in block.splitlines())


def citations_xml(stage: str) -> list[str]:
    dois = [f'<citation type="doi">{DOI[key]}</citation>' for key in EXTRAS[stage].citations]
    return dois + [f'<citation type="bibtex">{escape(GCMLM_BIBTEX)}</citation>']


def indent(block: str, spaces: int) -> str:
    return "\n".join((" " * spaces + line) if line else line for line in block.splitlines())


def wrapper(stage: str) -> str:
    """The complete Galaxy tool XML of one stage."""
    contract = stage_contract(stage)
    options = [opt for opt in exposed_options(contract) if not opt.io.is_output]
    reqs = "\n".join(f'    <requirement type="package" version="{v}">{n}</requirement>' for n, v in requirements(stage))
    params = "\n".join(indent(p, 8) for opt in options for p in input_params(stage, opt))
    outputs = "\n".join(indent(o, 8) for o in outputs_xml(stage))
    tests = "\n".join(indent(t, 8) for t in tests_xml(contract))
    cites = "\n".join(indent(c, 8) for c in citations_xml(stage))
    return f"""<?xml version="1.0"?>
<!-- Generated by gcmlm.galaxy from `gcmlm {stage}`'s option contract: do not edit; run `make galaxy`. -->
<tool id="gcmlm_{stage.replace('-', '_')}" name="gcmlm {stage}" version="{__version__}+galaxy0" profile="{PROFILE}" license="Apache-2.0">
    <description>{escape(contract.summary.rstrip('.'))}</description>
    <requirements>
        <container type="docker">{IMAGE.format(stage=stage, version=__version__)}</container>
{indent(reqs, 4)}
    </requirements>
    <version_command>gcmlm --version</version_command>
    <command detect_errors="exit_code"><![CDATA[
{command(contract)}
    ]]></command>
    <inputs>
{params}
    </inputs>
    <outputs>
{outputs}
    </outputs>
    <tests>
{tests}
    </tests>
    <help><![CDATA[
{help_text(stage)}
    ]]></help>
    <citations>
{cites}
    </citations>
</tool>
"""


def wrapper_path(stage: str) -> Path:
    return REPO / "tools" / stage / f"{stage}.xml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcmlm.galaxy", description="Write tools/<stage>/<stage>.xml")
    parser.add_argument("--check", action="store_true", help="only report wrappers that differ; exit 1 if any")
    args = parser.parse_args(argv)
    stale, undecided = [], []
    for stage in (s.name for s in STAGES):
        try:
            text, path = wrapper(stage), wrapper_path(stage)
        except (UndecidedOption, KeyError) as exc:  # a stage whose contract or EXTRAS entry is missing
            undecided.append(f"{stage}: {exc}")
            continue
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
        link = path.parent / "test-data"  # Galaxy looks for test files in test-data/ next to the tool
        if not args.check and not link.exists():
            link.symlink_to("tests")
    for stage in (s.name for s in STAGES):  # the CWL tools' SoftwareRequirement, from the same source
        cwl = REPO / "tools" / stage / f"{stage}.cwl"
        text = cwl.read_text()
        if with_software_requirement(text, stage) != text:
            stale.append(cwl)
            if not args.check:
                cwl.write_text(with_software_requirement(text, stage))
    for path in stale:
        print(("differs: " if args.check else "wrote ") + str(path.relative_to(REPO)))
    for problem in undecided:
        print(f"cannot write a wrapper for {problem}", file=sys.stderr)
    return 1 if undecided or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
