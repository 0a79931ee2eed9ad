"""`python -m backend qa-errors`: break open-book QA misses down by attribute and kind of miss (argument parsing only; the work is `backend.training.qa_errors.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "break open-book QA misses down by attribute and kind of miss"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("qa-errors", help=HELP, description=HELP)
    p.add_argument("folders", nargs="+")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--jsonl", default="")
    p.set_defaults(func=run_in("backend.training.qa_errors"))
    return p
