"""`python -m backend experiment-summary FILE...`: markdown tables of committed experiment results (argument
parsing only; the work is `backend.experiments.summary.summarize`)."""

from __future__ import annotations

import argparse

from backend.experiments import summary

HELP = "markdown tables (accuracy, n, 95%% interval) of experiment results in JSONL files"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("experiment-summary", help=HELP, description=HELP)
    p.add_argument("files", nargs="+", help="JSONL results files (results/exp_*.jsonl)")
    p.add_argument("--wide", action="store_true", help="the sweep's last key across columns")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    summary.WIDE = args.wide
    for path in args.files:
        print(summary.summarize(path))
    return 0
