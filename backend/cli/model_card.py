"""`python -m backend model-card`: write the bundled models' cards (README.md) from training and evaluation records (argument parsing only; the work is `backend.training.model_card.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "write the bundled models' cards (README.md) from training and evaluation records"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("model-card", help=HELP, description=HELP)
    p.add_argument("results", help="JSONL with the train run and the toyworld_eval runs")
    p.add_argument("--models-dir", default="assets/models")
    p.add_argument("--run-command", default=None,
                   help="the command the checkpoints came from (default: the scripts/gpu_run.sh train + evaluate recipe)")
    p.add_argument("--qa-errors", default="", help="JSONL from backend/training/qa_errors.py (optional)")
    p.add_argument("--copy-results", default="",
                   help="a copy-task experiment file (e.g. results/exp_long_context_copy_h100.jsonl.gz): a model "
                        "that copies nothing there gets a known-limitation section (optional)")
    p.set_defaults(func=run_in("backend.training.model_card"))
    return p
