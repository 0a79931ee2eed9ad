"""`python -m backend train-speed`: training-step speed of the toy trio per training path and batch size (argument parsing only; the work is `backend.training.speed.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "training-step speed of the toy trio per training path and batch size"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train-speed", help=HELP, description=HELP)
    p.add_argument("--models", default="toy-mamba,toy-mamba2,toy-transformer")
    p.add_argument("--preset", default="small")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-sizes", default="16,32")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--also-hf", action="store_true", help="also time transformers' own SSM training path")
    p.add_argument("--jsonl", default="", help="write store.RecordWriter records here")
    p.set_defaults(func=run_in("backend.training.speed"))
    return p
