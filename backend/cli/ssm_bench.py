"""`python -m backend ssm-bench`: end-to-end Mamba / Mamba-2 speed with our kernels on a GPU.
(argument parsing only; the work is `backend.bench.ssm.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

LENGTHS = "512,1024,2048,4096,8192,16384,32768,65536"
HELP = "end-to-end SSM benchmark (GPU): prefill time + peak memory vs length, decode tokens/s vs context"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ssm-bench", help=HELP, description=HELP)
    p.add_argument("--out", required=True, help="JSONL file for the records (store.RecordWriter format)")
    p.add_argument("--models", default="mamba-130m,mamba2-130m")
    p.add_argument("--lengths", default=LENGTHS, help="prefill lengths")
    p.add_argument("--contexts", default="512,2048,8192,32768", help="decode context lengths")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hf-lengths", default="512,2048", help="lengths for the Hugging Face baseline ('' to skip)")
    p.add_argument("--smoke", action="store_true", help="tiny model shapes (CPU allowed): checks the script only")
    p.set_defaults(func=run_in("backend.bench.ssm"))
    return p
