"""Maintenance of the results database, behind `python -m backend store ...`:

    info(db)                      row counts, schema version, file size
    import_paths(db, paths)       import JSONL files or folders (default: results/)
    call_latency(rows, repeats)   per-call latency of the store's API on a temporary database
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from store import open_store


def info(db: str | None = None) -> dict:
    st = open_store(db)
    size = st.path.stat().st_size if st.path.exists() else 0
    return {"db": str(st.path), "schema_version": st.schema_version(), "bytes": size, **st.counts()}


def import_paths(db: str | None, paths: list[str]) -> list[tuple[str, dict]]:
    """(path, counts) per JSONL file or folder imported (default: results/)."""
    st = open_store(db)
    out = []
    for target in paths or ["results"]:
        p = Path(target)
        out.append((target, st.import_jsonl(p) if p.is_file() else st.import_results_dir(p)))
    return out


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def call_latency(rows: int = 10_000, repeats: int = 10) -> dict:
    """Median milliseconds of the store's calls on a temporary database holding `rows` measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "bench.duckdb")
        run_id = st.start_run("bench", {}, {})
        st.add_measurements(run_id, [{"model": "m", "value": float(i), "tpot_ms": 1.0} for i in range(rows)])
        one = [{"model": "m", "value": 1.0}]
        batch = [{"model": "m", "value": float(i)} for i in range(100)]
        record = {
            "bench": "store_call_latency",
            "device": "cpu",
            "rows_in_table": rows,
            "start_run_ms": _timed(lambda: st.start_run("bench", {}, {}), repeats),
            "add_1_measurement_ms": _timed(lambda: st.add_measurements(run_id, one), repeats),
            "add_100_measurements_ms": _timed(lambda: st.add_measurements(run_id, batch), repeats),
            "read_all_measurements_ms": _timed(lambda: st.measurements(), repeats),
            "runs_ms": _timed(lambda: st.runs(), repeats),
        }
    return record
