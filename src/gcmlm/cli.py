"""`gcmlm`: one command whose subcommands are the pipeline stages (see gcmlm.stages), plus
utilities that are no stage (no CWL tool, no image), such as `gcmlm jobs`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gcmlm import __version__
from gcmlm.common.errors import GcmlmError
from gcmlm.stages import BY_NAME, STAGES

# Utility subcommands: name -> (module with main(argv) -> int, one-line summary). Listed apart
# from the stages in `gcmlm --help`; each parses its own arguments and prints its own errors.
UTILITIES = {
    "jobs": ("gcmlm.jobs", "write a CWL job file for a workflow (workflows/*.cwl) from a cohort manifest"),
}


def utilities_epilog() -> str:
    width = max(len(name) for name in [*UTILITIES, *BY_NAME]) + 2  # the stages' column
    lines = [f"    {name:<{width}}{summary}" for name, (_, summary) in UTILITIES.items()]
    return "utilities (no CWL tool, no image):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcmlm",
        description="Radiopathomics pipeline stages for metachronous liver metastasis in gastric cancer.",
        epilog=utilities_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gcmlm {__version__}")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", title="stages")
    for stage in STAGES:
        sub.add_parser(stage.name, help=stage.summary, description=stage.summary, add_help=False)
    return parser


def load_stage(name: str):
    stage = BY_NAME[name]
    try:
        return importlib.import_module(stage.module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == stage.module or stage.module.startswith(exc.name + ".")):
            raise GcmlmError(f"stage '{name}' is not built yet") from None
        raise GcmlmError(
            f"stage '{name}' needs the Python package '{exc.name}': pip install 'gcmlm[{stage.branch}]'"
        ) from None


def stage_parser(name: str, module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"gcmlm {name}", description=BY_NAME[name].summary)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    module.add_arguments(parser)
    return parser


def run_utility(name: str, argv: list[str]) -> int:
    module = importlib.import_module(UTILITIES[name][0])
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in UTILITIES:
        return run_utility(argv[0], argv[1:])
    parser = build_parser()
    if not argv or argv[0] not in BY_NAME:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    try:
        module = load_stage(name)
        args = stage_parser(name, module).parse_args(argv[1:])
        level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format=f"[gcmlm {name}] %(levelname)s %(message)s", stream=sys.stderr)
        result = module.run(args)
        return int(result or 0)
    except GcmlmError as exc:
        print(f"gcmlm {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"gcmlm {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
