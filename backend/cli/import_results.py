"""`python -m backend import-results [folder]`: load JSONL results (from GPU machines) into the DuckDB store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from store import StoreImportError, open_store

HELP = "import JSONL result files (RecordWriter output, e.g. results/*.jsonl, *.jsonl.gz, *.jsonl.xz) into the results database"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("import-results", help=HELP, description=HELP + ". Importing twice adds nothing.")
    p.add_argument("folder", nargs="?", default="results", help="a folder of *.jsonl / *.jsonl.gz / *.jsonl.xz files, or one file "
                                                               "(default: results)")
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    target = Path(args.folder)
    st = open_store(args.db)
    try:
        counts = st.import_jsonl(target) if target.is_file() else st.import_results_dir(target)
    except StoreImportError as e:
        print(f"error: {e}", file=sys.stderr)
        print(json.dumps({"imported": e.counts, "problems": len(e.problems)}))
        return 2
    print(json.dumps({"imported": counts}, default=str))
    return 0
