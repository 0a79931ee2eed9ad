"""`python -m backend store ...`: maintenance of the results database (argument parsing only; the work is
`store.maintenance`).

    python -m backend store info   [--db PATH]             row counts, schema version, file size
    python -m backend store import [--db PATH] [PATH ...]  import JSONL files or folders (default: results/)
    python -m backend store bench  [--rows N]              per-call latency on a temp database (last line: JSON)
"""

from __future__ import annotations

import argparse
import json

from store import maintenance

HELP = "results database maintenance: info, import, per-call latency"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("store", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="store_command", metavar="<action>", required=True)
    s = sub.add_parser("info", help="row counts and schema version")
    s.add_argument("--db", default=None, help="database file (default: SSM_ARENA_DB or data/arena.duckdb)")
    s = sub.add_parser("import", help="import JSONL result files or folders")
    s.add_argument("--db", default=None, help="database file (default: SSM_ARENA_DB or data/arena.duckdb)")
    s.add_argument("paths", nargs="*", help="files or folders (default: results/)")
    s = sub.add_parser("bench", help="per-call latency on a temporary database")
    s.add_argument("--rows", type=int, default=10_000)
    s.add_argument("--repeats", type=int, default=10)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.store_command == "info":
        print(json.dumps(maintenance.info(args.db)))
    elif args.store_command == "import":
        for target, counts in maintenance.import_paths(args.db, args.paths):
            print(f"{target}: {json.dumps(counts)}")
    else:
        print(json.dumps(maintenance.call_latency(args.rows, args.repeats)))
    return 0
