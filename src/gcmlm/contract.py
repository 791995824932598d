"""The option contract of a stage: its command-line options as plain data.

argparse is the single place where a stage's options are defined (``add_arguments(parser)`` in the
stage module). This module reads the real parser (``gcmlm.cli.stage_parser``) and turns each option
into an :class:`Option`: flag, dest, value type, multiplicity, required, default, choices, help, and
what the value is on disk (:class:`IoKind`). Wrappers for workflow systems are checked against, or
generated from, this contract: the CWL tools in ``tools/`` are checked by
``tests/unit/test_contract.py``; Galaxy wrappers (#15) will be generated from it.

argparse does not say whether a string is a path, nor whether a path is read or written, so
:data:`IO_KINDS` says it for every string option of every stage. Options whose value cannot be a
path (numbers, flags, fixed choices) are values without being listed. A string option missing from
the table is an :class:`UndecidedOption` error, so a new option cannot slip through unclassified.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from enum import Enum
from typing import Any

from gcmlm.stages import BY_NAME, STAGES


class IoKind(Enum):
    """What an option's value is: a plain value, or a path the stage reads or writes."""

    VALUE = "value"  # not a path: a number, a name, an ID, a column...
    INPUT_FILE = "input file"
    INPUT_DIR = "input folder"
    INPUT_FILE_OR_DIR = "input file or folder"  # e.g. a DICOM folder or a NIfTI file
    INPUT_FILE_OR_NAME = "input file or shipped name"  # e.g. a parameter file or a shipped preset's name
    OUTPUT_FILE = "output file"
    OUTPUT_DIR = "output folder"

    @property
    def is_input(self) -> bool:
        return self.name.startswith("INPUT_")

    @property
    def is_output(self) -> bool:
        return self.name.startswith("OUTPUT_")


class ValueType(Enum):
    """The type of one value of an option (of each value, when it takes several)."""

    FLAG = "flag"  # takes no value: present or absent (store_true / store_false)
    BOOL = "bool"  # takes a value true/false (e.g. wsi-tile's CLAM-style --use-padding true)
    INT = "int"
    FLOAT = "float"
    STR = "str"
    PATH = "path"  # a file or folder; Option.io says which and in which direction


@dataclass(frozen=True)
class Option:
    """One command-line option of a stage, as the stage's argparse parser defines it."""

    flag: str  # the long form, e.g. "--batch-size"
    aliases: tuple[str, ...]  # the other spellings, e.g. ("-c",)
    dest: str  # the attribute on the parsed namespace
    type: ValueType
    nargs: int | str | None  # argparse's nargs: None = one value, "+" / "*" / "?" or an exact count
    required: bool
    default: Any  # argparse's default, as the parser holds it (None: the stage decides)
    choices: tuple[str, ...] | None  # the allowed values, in the parser's order
    help: str
    metavar: str | tuple[str, ...] | None
    io: IoKind

    @property
    def is_list(self) -> bool:
        """Whether the option takes a list of values (nargs "+", "*" or a count)."""
        return isinstance(self.nargs, int) or self.nargs in ("+", "*")

    @property
    def is_flag(self) -> bool:
        return self.type is ValueType.FLAG


@dataclass(frozen=True)
class StageContract:
    """All options of one stage, in the parser's order (the shared -v/-q first)."""

    stage: str
    summary: str
    options: tuple[Option, ...]

    def option(self, flag: str) -> Option:
        """The option with this long flag (KeyError if the stage has none)."""
        for opt in self.options:
            if opt.flag == flag:
                return opt
        raise KeyError(f"{self.stage} has no option {flag}")

    @property
    def flags(self) -> set[str]:
        return {opt.flag for opt in self.options}


class UndecidedOption(Exception):
    """An option the contract cannot classify: add it to IO_KINDS (or VALUE_TYPES)."""


V = IoKind.VALUE
IN_FILE, IN_DIR = IoKind.INPUT_FILE, IoKind.INPUT_DIR
IN_FILE_OR_DIR, IN_FILE_OR_NAME = IoKind.INPUT_FILE_OR_DIR, IoKind.INPUT_FILE_OR_NAME
OUT_FILE, OUT_DIR = IoKind.OUTPUT_FILE, IoKind.OUTPUT_DIR

# What every string option is, per stage and long flag. Options whose value cannot be a path
# (int/float, flags, fixed choices) need no entry; an entry for one must agree (IoKind.VALUE).
IO_KINDS: dict[str, dict[str, IoKind]] = {
    "ct-preprocess": {
        "--image": IN_FILE_OR_DIR, "--mask": IN_FILE, "--series-uid": V,
        "--out": OUT_FILE, "--mask-out": OUT_FILE, "--report": OUT_FILE,
    },
    "nnunet-dataset": {
        "--manifest": IN_FILE, "--images": IN_FILE, "--labels": IN_FILE, "--test-images": IN_FILE,
        "--case-ids": V, "--test-cases": V, "--dataset-name": V, "--classes": V,
        "--out": OUT_DIR,
    },
    "nnunet-plan": {"--raw": IN_DIR, "--planner": V, "--out": OUT_DIR},
    "nnunet-train": {
        "--preprocessed": IN_DIR, "--fold": V, "--trainer": V, "--plans": V,
        "--out": OUT_FILE, "--results": OUT_DIR, "--validation-summary": OUT_FILE,
    },
    "nnunet-predict": {
        "--model": IN_FILE_OR_DIR, "--images": IN_FILE, "--configuration": V, "--folds": V,
        "--checkpoint": V,  # a checkpoint file name inside the model, not a path
        "--out": OUT_DIR, "--qa-dir": OUT_DIR,
    },
    "radiomics-extract": {
        "--image": IN_FILE_OR_DIR, "--mask": IN_FILE, "--patient-id": V, "--manifest": IN_FILE,
        "--concat": IN_FILE, "--params": IN_FILE_OR_NAME,
        "--out": OUT_FILE, "--diagnostics": OUT_FILE,
    },
    "wsi-tile": {
        "--slide": IN_FILE, "--mpp-csv": IN_FILE, "--preset": IN_FILE_OR_NAME,
        "--use-otsu": V, "--use-padding": V, "--keep-ids": V, "--exclude-ids": V,
        "--out": OUT_DIR,
    },
    "patch-embed": {
        "--slide": IN_FILE, "--coords": IN_FILE, "--checkpoint": IN_FILE, "--encoder": V,
        "--out": OUT_DIR,
    },
    "slide-pool": {
        "--features": IN_FILE, "--slide-map": IN_FILE,
        "--out": OUT_FILE, "--report": OUT_FILE, "--slide-table": OUT_FILE,
    },
    "mil-train": {
        "--features": IN_FILE, "--slide-map": IN_FILE, "--labels": IN_FILE, "--label": V, "--out": OUT_DIR,
    },
    "mil-predict": {
        "--model": IN_DIR, "--features": IN_FILE, "--slide-map": IN_FILE,
        "--out": OUT_FILE, "--slide-out": OUT_FILE, "--attention-dir": OUT_DIR,
    },
    "mil-heatmap": {"--attention": IN_FILE, "--slide": IN_FILE, "--out": OUT_FILE, "--geojson": OUT_FILE},
    "fusion-merge": {"--tables": IN_FILE, "--out": OUT_FILE, "--report": OUT_FILE},
    "fusion-train": {"--table": IN_FILE, "--mil-features": IN_FILE, "--slide-map": IN_FILE, "--label": V, "--time": V, "--event": V, "--combat-column": V,
                     "--out": OUT_DIR},
    "fusion-evaluate": {
        "--model": IN_FILE_OR_DIR, "--names": V, "--table": IN_FILE, "--label": V, "--time": V, "--event": V,
        "--out": OUT_DIR,
    },
    "fusion-predict": {"--model": IN_FILE_OR_DIR, "--name": V, "--table": IN_FILE, "--out": OUT_FILE},
    "run-report": {"--results": IN_DIR, "--out": OUT_FILE, "--manifest": IN_FILE, "--labels": IN_FILE, "--title": V},
    "demo-cohort": {"--out": OUT_DIR},
}

# Options whose argparse type is a function of the stage's own: what one value of them is.
VALUE_TYPES: dict[str, dict[str, ValueType]] = {
    "wsi-tile": {
        "--use-otsu": ValueType.BOOL, "--use-padding": ValueType.BOOL,  # CLAM-style true/false values
        "--keep-ids": ValueType.STR, "--exclude-ids": ValueType.STR,  # comma-separated contour indices "I,J"
    },
}

_PLAIN_TYPES = {None: ValueType.STR, str: ValueType.STR, int: ValueType.INT, float: ValueType.FLOAT}
_FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction)
_SKIPPED_ACTIONS = (argparse._HelpAction, argparse._VersionAction)


def stage_contract(name: str, module=None) -> StageContract:
    """The contract of stage ``name``, read from its real parser (the module is imported if not given)."""
    from gcmlm.cli import load_stage, stage_parser  # the CLI imports the stage registry, not this module

    parser = stage_parser(name, module if module is not None else load_stage(name))
    options = tuple(_option(name, action) for action in parser._actions if not isinstance(action, _SKIPPED_ACTIONS))
    return StageContract(stage=name, summary=BY_NAME[name].summary, options=options)


def all_contracts() -> list[StageContract]:
    """The contract of every registered stage, in registry order."""
    return [stage_contract(stage.name) for stage in STAGES]


def _option(stage: str, action: argparse.Action) -> Option:
    if not action.option_strings:
        raise UndecidedOption(f"{stage}: positional argument '{action.dest}' (stages take options only)")
    flag = _long_flag(action)
    io = _io_kind(stage, flag, action)
    return Option(
        flag=flag,
        aliases=tuple(s for s in action.option_strings if s != flag),
        dest=action.dest,
        type=ValueType.PATH if io is not IoKind.VALUE else _value_type(stage, flag, action),
        nargs=action.nargs if not isinstance(action, _FLAG_ACTIONS) else None,
        required=action.required,
        default=action.default,
        choices=tuple(action.choices) if action.choices is not None else None,
        help=action.help or "",
        metavar=action.metavar,
        io=io,
    )


def _long_flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    if not longs:
        raise UndecidedOption(f"option {action.option_strings} has no long form")
    return longs[0]


def _value_type(stage: str, flag: str, action: argparse.Action) -> ValueType:
    if isinstance(action, _FLAG_ACTIONS):
        return ValueType.FLAG
    declared = VALUE_TYPES.get(stage, {}).get(flag)
    if declared is not None:
        return declared
    if action.type in _PLAIN_TYPES:
        return _PLAIN_TYPES[action.type]
    raise UndecidedOption(f"{stage} {flag}: argparse type {action.type!r}; declare it in VALUE_TYPES")


def _io_kind(stage: str, flag: str, action: argparse.Action) -> IoKind:
    declared = IO_KINDS.get(stage, {}).get(flag)
    cannot_be_path = (isinstance(action, _FLAG_ACTIONS) or action.choices is not None
                      or action.type in (int, float))
    if cannot_be_path:
        if declared not in (None, IoKind.VALUE):
            raise UndecidedOption(f"{stage} {flag}: IO_KINDS says {declared.value}, but its values are not paths")
        return IoKind.VALUE
    if declared is None:
        raise UndecidedOption(f"{stage} {flag}: a string option with no entry in gcmlm.contract.IO_KINDS")
    return declared
