"""`python -m backend evaluate`: held-out evaluation suite of trained checkpoints (QA, few-shot, pass-key, arithmetic) (argument parsing only; the work is `backend.training.eval_suite.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "held-out evaluation suite of trained checkpoints (QA, few-shot, pass-key, arithmetic)"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    p.add_argument("folders", nargs="+", help="checkpoint folders (config, safetensors, tokenizer)")
    p.add_argument("--out", required=True, help="JSONL file (store.RecordWriter format)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument("--tasks", default="", help="comma-separated subset of tasks")
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.set_defaults(func=run_in("backend.training.eval_suite"))
    return p
