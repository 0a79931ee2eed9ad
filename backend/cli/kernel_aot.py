"""`python -m backend kernel-aot`: compile every SSM kernel ahead of time for AMD (gfx90a, gfx942) and NVIDIA
(sm_80, sm_90) on this machine, no GPU needed, and print registers / spills / LDS / occupancy."""

from __future__ import annotations

import argparse
import json

from kernels import aot

HELP = "compile the SSM kernels for AMD and NVIDIA targets (no GPU needed) and print the resource table"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("kernel-aot", help=HELP, description=HELP)
    p.add_argument("--out", help="also write one JSON record per kernel x target to this JSONL file")
    p.add_argument("--record", metavar="FILE.jsonl",
                   help="also append the table to a results file in the store's format (kind 'kernel_aot')")
    p.add_argument("--targets", help="comma list like hip:gfx90a,cuda:90 (default: gfx90a, gfx942, sm_80, sm_90)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    records = aot.run(aot.parse_targets(args.targets))
    print(aot.format_table(records))
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    if args.record:
        from backend.runinfo import run_meta
        from store import RecordWriter

        writer = RecordWriter(args.record)
        run_id = writer.start_run("kernel_aot", {"targets": sorted({r["target"] for r in records})}, run_meta())
        rows = [{**r, "model": r["op"], "device": r["target"], "family": "kernel", "path": "triton",
                 "metric": "compile_s", "value": r.get("compile_s")} for r in records]
        writer.add_measurements(run_id, rows)
        bad = sum(1 for r in records if not r["ok"] or r.get("spills"))
        writer.finish_run(run_id, "completed", {"kernels": len(records), "failed_or_spilled": bad})
    return 1 if any(not r["ok"] or r.get("spills") for r in records) else 0
