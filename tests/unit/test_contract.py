"""Each stage's CWL tool matches its option contract (gcmlm.contract, read from the argparse parser).

The rules, checked for every stage in gcmlm.stages.STAGES:
- every CLI option is bound by the tool (an input's inputBinding, or the tool's `arguments`), unless
  it is in NOT_EXPOSED below, with the reason;
- every flag the tool binds is a long flag of the CLI (no stale or misspelt flags);
- an option that is an input or a value is bound by input(s) whose inputBinding prefix is the flag,
  unless COMPUTED below says why an expression builds it; those inputs have
  - the CWL type of the option: int / float / string / boolean / File / Directory, an array when the
    option takes several values (unless SINGLE_VALUE says the tool takes one), and an enum with the
    same symbols, in the same order, as the option's choices (a list with choices is string[] where
    ENUM_ARRAYS_AS_STRINGS says cwltool cannot bind it);
  - `?` (or "null") if and only if the option is not required;
  - no CWL default: when the input is null the flag is left out and the CLI's default applies, so
    each default is written in one place only (the stage's argparse);
- an option that is an output is named by the tool (in `arguments`, or by a string input holding a
  file name, which may have a default: the tool's choice of name, not a CLI default).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gcmlm import galaxy
from gcmlm.contract import IO_KINDS, VALUE_TYPES, IoKind, Option, StageContract, ValueType, stage_contract
from gcmlm.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
ALL_STAGES = "*"

# Options a tool deliberately does not expose: one table for the CWL tools and the Galaxy wrappers.
NOT_EXPOSED = galaxy.NOT_EXPOSED
assert galaxy.ALL == ALL_STAGES

# Input options a tool binds through an expression instead of a plain `prefix: <flag>` input.
COMPUTED = {
    ("nnunet-dataset", "--manifest"): "manifest paths are relative to it: the tool stages the cohort folder"
                                      " (`cohort`) and passes <cohort>/<manifest_name>",
    ("radiomics-extract", "--manifest"): "as nnunet-dataset's: `cohort` folder + `manifest_name`",
    ("radiomics-extract", "--params"): "a parameter file (`params`) or a shipped name (`params_name`), and"
                                       " only in the extraction form (not with `tables`)",
    ("patch-embed", "--num-workers"): "when null, the step's cores minus one (runtime.cores), not the CPUs"
                                      " the container happens to see",
}

# List options of which a tool takes one value: one slide / one patient per step, scattered by workflows.
SINGLE_VALUE = {
    ("wsi-tile", "--slide"): "one slide per step; its outputs are single files",
    ("radiomics-extract", "--image"): "one patient per step; `tables` (--concat) joins the scattered rows",
    ("radiomics-extract", "--mask"): "one patient per step",
    ("radiomics-extract", "--patient-id"): "one patient per step",
}

# List options with fixed choices that a tool takes as string[]: cwltool fails to bind an array of
# enums ("name ... is already in use", cwltool#821, #1285, schema_salad#248); the CLI checks the values.
ENUM_ARRAYS_AS_STRINGS = {
    ("fusion-train", "--models"): "cwltool#821",
    ("nnunet-plan", "--configuration"): "cwltool#821",
}

_SCALARS = {ValueType.INT: "int", ValueType.FLOAT: "float", ValueType.STR: "string",
            ValueType.FLAG: "boolean", ValueType.BOOL: "boolean"}
_PATHS = {IoKind.INPUT_FILE: "File", IoKind.INPUT_DIR: "Directory", IoKind.INPUT_FILE_OR_DIR: "Directory|File"}
_FLAG_IN_EXPRESSION = re.compile(r"""["'](--[A-Za-z0-9][A-Za-z0-9-]*)["']""")


def _listed(table: dict, stage: str, flag: str) -> bool:
    return (stage, flag) in table or (ALL_STAGES, flag) in table


def cwl_signature(cwl_type) -> tuple[bool, str]:
    """(optional, type) of a CWL type, e.g. "int[]?" -> (True, "array<int>"); enums keep their symbols in order."""
    if isinstance(cwl_type, str):
        optional, name = cwl_type.endswith("?"), cwl_type.removesuffix("?")
        if name.endswith("[]"):
            return optional, f"array<{cwl_signature(name[:-2])[1]}>"
        return optional or name == "null", name
    if isinstance(cwl_type, dict):
        if cwl_type["type"] == "enum":
            return False, "enum(" + ",".join(s.rsplit("/", 1)[-1] for s in cwl_type["symbols"]) + ")"
        if cwl_type["type"] == "array":
            return False, f"array<{cwl_signature(cwl_type['items'])[1]}>"
        return False, str(cwl_type["type"])
    members = [cwl_signature(member) for member in cwl_type if member != "null"]
    optional = "null" in cwl_type or any(opt for opt, _ in members)
    return optional, "|".join(sorted(sig for _, sig in members))


def expected_signature(stage: str, opt: Option) -> str:
    """The CWL type an input bound to this option must have (without the optional marker)."""
    if opt.choices is not None and not _listed(ENUM_ARRAYS_AS_STRINGS, stage, opt.flag):
        base = "enum(" + ",".join(opt.choices) + ")"
    elif opt.type is ValueType.PATH:
        base = _PATHS[opt.io]
    else:
        base = _SCALARS[opt.type]
    if opt.is_list and not _listed(SINGLE_VALUE, stage, opt.flag):
        return f"array<{base}>"
    return base


def load_tool(stage: str) -> dict:
    return yaml.safe_load((REPO / "tools" / stage / f"{stage}.cwl").read_text())


def _flags_in(binding) -> set[str]:
    """Flags a binding passes: its prefix and any quoted --flag in its valueFrom expression."""
    if not isinstance(binding, dict):
        return set(_FLAG_IN_EXPRESSION.findall(str(binding)))
    flags = set(_FLAG_IN_EXPRESSION.findall(str(binding.get("valueFrom", ""))))
    if binding.get("prefix"):
        flags.add(binding["prefix"])
    return flags


def bindings(tool: dict) -> tuple[dict[str, list[tuple[str, dict]]], set[str]]:
    """({flag: [(input id, input)] bound by an input's prefix or expression}, flags bound in `arguments`)."""
    by_flag: dict[str, list[tuple[str, dict]]] = {}
    for name, spec in tool["inputs"].items():
        for flag in _flags_in(spec.get("inputBinding") or {}):
            by_flag.setdefault(flag, []).append((name, spec))
    in_arguments = set().union(*(_flags_in(arg) for arg in tool.get("arguments", [])))
    return by_flag, in_arguments


def _input_problems(stage: str, opt: Option, bound: list[tuple[str, dict]]) -> list[str]:
    problems = []
    plain = [(name, spec) for name, spec in bound if spec["inputBinding"].get("prefix") == opt.flag]
    if not plain:
        return [f"{opt.flag}: no input with `inputBinding: {{prefix: {opt.flag}}}`"]
    # a file or a shipped name may be split over a File input and a string input
    allowed = {"File", "string"} if opt.io is IoKind.INPUT_FILE_OR_NAME else {expected_signature(stage, opt)}
    for name, spec in plain:
        optional, signature = cwl_signature(spec["type"])
        if signature not in allowed:
            problems.append(f"{opt.flag}: input '{name}' has type {signature}, the CLI wants {' or '.join(sorted(allowed))}")
        if optional == opt.required:
            want = "required (no ?)" if opt.required else "optional (?)"
            problems.append(f"{opt.flag}: input '{name}' must be {want}, as the CLI option is")
        if "default" in spec:
            problems.append(f"{opt.flag}: input '{name}' has default {spec['default']!r}; leave it out, "
                            f"the CLI's default ({opt.default!r}) applies")
        if "valueFrom" in spec["inputBinding"] and opt.type is not ValueType.BOOL:
            problems.append(f"{opt.flag}: input '{name}' rewrites its value (valueFrom); list it in COMPUTED")
    return problems


def contract_problems(contract: StageContract, tool: dict) -> list[str]:
    """Every way in which the tool differs from the stage's option contract (empty: they match)."""
    stage = contract.stage
    by_flag, in_arguments = bindings(tool)
    problems = [f"the tool binds {flag}, which `gcmlm {stage}` does not have"
                for flag in sorted((set(by_flag) | in_arguments) - contract.flags)]
    for opt in contract.options:
        bound = by_flag.get(opt.flag, [])
        if _listed(NOT_EXPOSED, stage, opt.flag):
            if bound or opt.flag in in_arguments:
                problems.append(f"{opt.flag} is bound by the tool but listed in NOT_EXPOSED")
        elif not bound and opt.flag not in in_arguments:
            problems.append(f"{opt.flag} ({opt.io.value}) is not exposed by the tool")
        elif opt.io.is_output or _listed(COMPUTED, stage, opt.flag):
            continue
        else:
            problems += _input_problems(stage, opt, bound)
    return problems


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_cwl_tool_matches_the_cli(stage):
    problems = contract_problems(stage_contract(stage), load_tool(stage))
    assert not problems, f"tools/{stage}/{stage}.cwl differs from `gcmlm {stage}`:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_every_option_has_an_io_kind(stage):
    contract = stage_contract(stage)  # raises UndecidedOption for a string option missing from IO_KINDS
    assert all(isinstance(opt.io, IoKind) for opt in contract.options)
    stale = (set(IO_KINDS.get(stage, {})) | set(VALUE_TYPES.get(stage, {}))) - contract.flags
    assert not stale, f"gcmlm.contract lists options `gcmlm {stage}` does not have: {sorted(stale)}"


def test_exception_lists_name_real_options():
    flags = {s.name: stage_contract(s.name).flags for s in STAGES}
    for table in (NOT_EXPOSED, COMPUTED, SINGLE_VALUE, ENUM_ARRAYS_AS_STRINGS):
        for stage, flag in table:
            stages = flags.values() if stage == ALL_STAGES else [flags[stage]]
            assert all(flag in f for f in stages), (stage, flag)
    for stage, flag in [*SINGLE_VALUE, *ENUM_ARRAYS_AS_STRINGS]:
        assert stage_contract(stage).option(flag).is_list, (stage, flag)


def test_signatures():
    assert cwl_signature("int[]?") == (True, "array<int>")
    assert cwl_signature(["null", "File", "Directory"]) == (True, "Directory|File")
    assert cwl_signature({"type": "array", "items": {"type": "enum", "symbols": ["a", "b"]}}) == (False, "array<enum(a,b)>")
    assert cwl_signature(["null", {"type": "enum", "symbols": ["x"]}]) == (True, "enum(x)")


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_software_requirement_names_the_pinned_versions(stage):
    """The CWL tool's SoftwareRequirement is gcmlm's version and constraints.txt's pins (as the Galaxy wrapper's)."""
    packages = load_tool(stage)["hints"]["SoftwareRequirement"]["packages"]
    found = {name: spec.get("version") for name, spec in packages.items()}
    assert found == {name: [version] for name, version in galaxy.requirements(stage)}, (
        f"tools/{stage}/{stage}.cwl: SoftwareRequirement differs from constraints.txt: run `make galaxy`")
