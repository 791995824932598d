"""run-report on a synthetic results tree: build time and page size for a large cohort.

    .venv/bin/python benchmarks/report/bench_report.py --patients 1000 [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_results import write_results_tree  # noqa: E402

from gcmlm.report.run_report import build_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="write the tree here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "results"
        start = time.perf_counter()
        write_results_tree(root, args.patients)
        made = time.perf_counter() - start
        start = time.perf_counter()
        facts = build_report(root, root / "index.html")
        built = time.perf_counter() - start
        page = (root / "index.html").stat().st_size
        n_slides = sum(len(p.slides) for p in facts.patients.values())
        print(f"patients {len(facts.patients)}, slides {n_slides}, images {len(facts.images)}, "
              f"flagged {sum(bool(p.flags) for p in facts.patients.values())}")
        print(f"results tree written in {made:.1f} s; report built in {built:.2f} s")
        print(f"index.html: {page / 1e6:.2f} MB ({page} bytes)")
        if args.keep:
            print(f"page: {root / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
