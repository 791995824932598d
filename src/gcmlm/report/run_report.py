"""run-report: one HTML page for a whole gc-mlm run, written into its results tree.

It reads the grouped results tree of workflows/gc-mlm.cwl (``radiology/``, ``pathology/``,
``fusion/``) and writes ``index.html`` beside them: the cohort at a glance (what each branch
produced, who was dropped at the fusion join and why), a sortable table per patient (tumour
volume, mask/label agreement where labels exist, patches per slide, tissue area, flags, the
warnings of every stage's JSON summary), galleries of the CT overlays and tissue/patch maps (and of
the MIL attention heatmaps, highest MIL risk first, when the run used ``slide_model: abmil``), and a
link to the model report. The page links the images and reports in the tree (relative URLs), so it
stays small for large cohorts; keep it in the results folder.

From Python: ``build_report(results, out)`` writes the page and returns the facts it shows
(``collect`` reads the tree, ``render`` writes the HTML).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from gcmlm.common.atomic import check_outputs, write_text
from gcmlm.report.core.collect import RunFacts, collect, flag_outliers
from gcmlm.report.core.page import render

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike
DEFAULT_MIN_PATCHES = 16
DEFAULT_MIN_DICE = 0.5
DEFAULT_TUMOUR_LABEL = 2
DEFAULT_TITLE = "gcmlm run report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, metavar="DIR",
                        help="results tree of a gc-mlm run (radiology/, pathology/, fusion/; any may be absent)")
    parser.add_argument("--out", metavar="HTML", help="the page to write (default RESULTS/index.html); it links "
                        "images as radiology/qa/..., relative to RESULTS, so it belongs in RESULTS")
    parser.add_argument("--manifest", metavar="CSV",
                        help="cohort manifest (or patient_id,slide_id CSV): expected patients, CTs and slides; "
                             "CT labels it names are used for mask/label agreement")
    parser.add_argument("--labels", nargs="+", default=[], metavar="NII",
                        help="CT label maps named <patient_id>.nii.gz, for mask/label agreement")
    parser.add_argument("--tumour-label", type=int, default=DEFAULT_TUMOUR_LABEL,
                        help=f"label value of the tumour in masks and label maps (default {DEFAULT_TUMOUR_LABEL})")
    parser.add_argument("--min-patches", type=int, default=DEFAULT_MIN_PATCHES,
                        help=f"flag slides with fewer patches (default {DEFAULT_MIN_PATCHES})")
    parser.add_argument("--min-dice", type=float, default=DEFAULT_MIN_DICE,
                        help=f"flag masks whose Dice with the label is lower (default {DEFAULT_MIN_DICE})")
    parser.add_argument("--title", default=DEFAULT_TITLE, help="page title")


def run(args: argparse.Namespace) -> int:
    out = args.out or os.path.join(args.results, "index.html")
    facts = build_report(args.results, out, manifest=args.manifest, labels=args.labels,
                         tumour_label=args.tumour_label, min_patches=args.min_patches, min_dice=args.min_dice,
                         title=args.title)
    flagged = sum(bool(p.flags) for p in facts.patients.values())
    log.info("%d patients, %d images, %d flagged -> %s", len(facts.patients), len(facts.images), flagged, out)
    return 0


def build_report(results: PathLike, out: PathLike, manifest: PathLike | None = None, labels: Sequence[PathLike] = (),
                 tumour_label: int = DEFAULT_TUMOUR_LABEL, min_patches: int = DEFAULT_MIN_PATCHES,
                 min_dice: float = DEFAULT_MIN_DICE, title: str = DEFAULT_TITLE) -> RunFacts:
    """Read the results tree, flag outliers and write the page to ``out``."""
    check_outputs(files=[out], inputs=[manifest, *labels])
    facts = collect(results, manifest, labels, tumour_label)
    flag_outliers(facts.patients.values(), min_patches, min_dice)
    # Links are relative to the results root: the page is the tree's index.html wherever it is built.
    write_text(out, render(facts, Path(results), title, min_patches))
    return facts
