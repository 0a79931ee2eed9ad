"""Small maintenance CLI for the results database.

    python -m store info   [--db PATH]            row counts, schema version, file size
    python -m store import [--db PATH] [PATH ...]  import JSONL files or folders (default: results/)
    python -m store bench  [--rows N]              per-call latency on a temp database (last line: JSON)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from store import StoreError, open_store


def _info(args) -> int:
    st = open_store(args.db)
    size = st.path.stat().st_size if st.path.exists() else 0
    print(json.dumps({"db": str(st.path), "schema_version": st.schema_version(), "bytes": size, **st.counts()}))
    return 0


def _import(args) -> int:
    st = open_store(args.db)
    for target in args.paths or ["results"]:
        p = Path(target)
        counts = st.import_jsonl(p) if p.is_file() else st.import_results_dir(p)
        print(f"{target}: {json.dumps(counts)}")
    return 0


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _bench(args) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "bench.duckdb")
        run_id = st.start_run("bench", {}, {})
        st.add_measurements(run_id, [{"model": "m", "value": float(i), "tpot_ms": 1.0} for i in range(args.rows)])
        one = [{"model": "m", "value": 1.0}]
        batch = [{"model": "m", "value": float(i)} for i in range(100)]
        record = {
            "bench": "store_call_latency",
            "device": "cpu",
            "rows_in_table": args.rows,
            "start_run_ms": _timed(lambda: st.start_run("bench", {}, {}), args.repeats),
            "add_1_measurement_ms": _timed(lambda: st.add_measurements(run_id, one), args.repeats),
            "add_100_measurements_ms": _timed(lambda: st.add_measurements(run_id, batch), args.repeats),
            "read_all_measurements_ms": _timed(lambda: st.measurements(), args.repeats),
            "runs_ms": _timed(lambda: st.runs(), args.repeats),
        }
    print(json.dumps(record))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="row counts and schema version")
    p.add_argument("--db", default=None, help="database file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.set_defaults(fn=_info)
    p = sub.add_parser("import", help="import JSONL result files or folders")
    p.add_argument("--db", default=None)
    p.add_argument("paths", nargs="*")
    p.set_defaults(fn=_import)
    p = sub.add_parser("bench", help="per-call latency on a temporary database")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=10)
    p.set_defaults(fn=_bench)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
