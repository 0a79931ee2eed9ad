"""`python -m backend bench-profile`: where one prefill's GPU time goes (scan, conv, matmul, attention, norm,
other), from torch.profiler on the benchmark's own stepper (argument parsing only; the work is
`backend.bench.profile.run`).

  python -m backend bench-profile --models 130m --batch 64 --prompt-len 2048 --jsonl results/profile_h100.jsonl
"""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "GPU: one prefill's kernel time by category (scan share, matmuls, ...) for each model"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench-profile", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="130m", help="shapes or presets, comma-separated (default: 130m)")
    p.add_argument("--batch", type=int, default=64, help="sequences per prefill (default 64)")
    p.add_argument("--prompt-len", type=int, default=2048, help="prompt tokens (default 2048, the paper setting)")
    p.add_argument("--repeats", type=int, default=3, help="unprofiled timed prefills for the wall time (median)")
    p.add_argument("--device", default=None, help="torch device (default: cuda)")
    p.add_argument("--jsonl", required=True, help="JSONL file for the records (store.RecordWriter format)")
    p.set_defaults(func=run_in("backend.bench.profile"))
    return p
