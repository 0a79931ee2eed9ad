"""`python -m backend kernel-aot`: compile every SSM kernel ahead of time for AMD (gfx90a, gfx942) and NVIDIA
(sm_80, sm_90) on this machine, no GPU needed, and print registers / spills / LDS / occupancy."""

from __future__ import annotations

import argparse

HELP = "compile the SSM kernels for AMD and NVIDIA targets (no GPU needed) and print the resource table"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("kernel-aot", help=HELP, description=HELP)
    p.add_argument("--out", help="also write one JSON record per kernel x target to this JSONL file")
    p.add_argument("--targets", help="comma list like hip:gfx90a,cuda:90 (default: gfx90a, gfx942, sm_80, sm_90)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from kernels import aot

    argv = []
    if args.out:
        argv += ["--out", args.out]
    if args.targets:
        argv += ["--targets", args.targets]
    return aot.main(argv)
