"""`python -m backend retrieval-bench`: parse, ingest, search latency and recall of the retrieval path
(argument parsing only; the work is `backend.bench.retrieval.run`). The last stdout line is a JSON record."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "retrieval path benchmark: PDF parse, chunk + embed throughput, search latency, recall@k"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("retrieval-bench", help=HELP, description=HELP)
    p.add_argument("--docs", type=int, default=200)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--pdf-pages", type=int, default=50)
    p.add_argument("--device", default=None, help="cpu | cuda (default: SSM_ARENA_DEVICE or auto)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_in("backend.bench.retrieval"))
    return p
