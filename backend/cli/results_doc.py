"""`python -m backend results-doc`: regenerate docs/results.md from the committed results/ files (argument
parsing only; the work is `backend.experiments.results_doc`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "regenerate docs/results.md (the measurement history) from results/*.jsonl"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("results-doc", help=HELP, description=HELP)
    p.add_argument("--out", default="docs/results.md", help="the markdown file to write")
    p.add_argument("--results", default="results", help="the folder of committed JSONL results")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from backend.experiments import (
        results_doc,  # pandas and a temporary DuckDB store load here, not at --help
    )

    if args.check:
        current = Path(args.out).read_text(encoding="utf-8") if Path(args.out).is_file() else ""
        if current != results_doc.render(Path(args.results)):
            print(f"{args.out} is out of date with {args.results}/: run `python -m backend results-doc`.")
            return 1
        print(f"{args.out} is up to date.")
        return 0
    print(results_doc.write(Path(args.out), Path(args.results)))
    return 0
