"""Import JSONL files written by RecordWriter into the DuckDB store; idempotent by record id.

Good lines always go in; bad lines are collected as "file:line: reason" and reported together in a
StoreImportError raised after the import (its `.counts` says what went in).
"""

from __future__ import annotations

import lzma
from pathlib import Path

from store.connection import registered
from store.errors import StoreError, StoreImportError
from store.records import END_STATUSES, RESULT_SUFFIXES, iter_records, result_files
from store.rows import normalize, to_arrow
from store.schema import MEASUREMENTS, PREDICTIONS, RUNS

COUNT_KEYS = ("runs", "run_ends", "measurements", "predictions", "errors")
_RUN_END = {"run_id": "VARCHAR", "status": "VARCHAR", "finished_at": "TIMESTAMP", "summary": "JSON"}


def _need_str(rec: dict, key: str) -> str:
    v = rec.get(key)
    if not isinstance(v, str) or not v:
        raise ValueError(f"missing {key!r}")
    return v


def _parse(rec: dict) -> tuple[str, dict]:
    """One record -> (bucket, normalized row); raises ValueError with a short reason."""
    kind = rec["type"]
    run_id = _need_str(rec, "run_id")
    if kind == "run":
        row = {"run_id": run_id, "kind": _need_str(rec, "kind"), "name": rec.get("name"),
               "created_at": rec.get("created_at"), "status": "running",
               "config": rec.get("config") or {}, "meta": rec.get("meta") or {}}
        return "runs", normalize(row, RUNS, "run", extra=False)
    if kind == "run_end":
        if rec.get("status") not in END_STATUSES:
            raise ValueError(f"status must be one of {', '.join(END_STATUSES)}, got {rec.get('status')!r}")
        row = {"run_id": run_id, "status": rec["status"], "finished_at": rec.get("finished_at"),
               "summary": rec.get("summary")}
        return "run_ends", normalize(row, _RUN_END, "run_end", extra=False)
    columns = MEASUREMENTS if kind == "measurement" else PREDICTIONS
    id_key = f"{kind}_id"
    data = rec.get("data", {})
    if not isinstance(data, dict):
        raise ValueError("'data' must be a JSON object")
    row = {**data, id_key: _need_str(rec, id_key), "run_id": run_id, "created_at": rec.get("created_at")}
    return kind + "s", normalize(row, columns, kind)


def import_jsonl(store, path: Path) -> dict[str, int]:
    counts, problems = _import_file(store, path)
    if problems:
        raise StoreImportError(_problem_message(problems, counts), counts, problems)
    return counts


def import_dir(store, folder: Path) -> dict:
    if not folder.is_dir():
        if folder.name.endswith(RESULT_SUFFIXES):
            raise StoreError(f"There is no results file {folder}; nothing to import.")
        if folder.exists():
            raise StoreError(f"{folder} is not a folder of results; give a folder or one *.jsonl / *.jsonl.gz / *.jsonl.xz file.")
        raise StoreError(f"There is no results folder or file {folder}; nothing to import.")
    totals = dict.fromkeys(COUNT_KEYS, 0)
    totals["files"] = 0
    problems: list[str] = []
    for path in result_files(folder, recursive=True):
        counts, bad = _import_file(store, path)
        for k in COUNT_KEYS:
            totals[k] += counts[k]
        totals["files"] += 1
        problems += bad
    if problems:
        raise StoreImportError(_problem_message(problems, totals), totals, problems)
    return totals


def _problem_message(problems: list[str], counts: dict) -> str:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return (
        f"{len(problems)} line(s) could not be imported: {shown}. Every other line was imported "
        "(importing again skips what is already there), so fix or delete those lines and import again."
    )


def _import_file(store, path: Path) -> tuple[dict[str, int], list[str]]:
    if not path.is_file():
        raise StoreError(f"There is no results file {path}.")
    buckets: dict[str, dict[str, dict]] = {"runs": {}, "run_ends": {}, "measurements": {}, "predictions": {}}
    problems = []
    lineno = 0
    try:
        for lineno, rec, problem in iter_records(path):
            if rec is not None:
                try:
                    bucket, row = _parse(rec)
                except ValueError as e:
                    problem = str(e)
                else:
                    key = row["run_id"] if bucket in ("runs", "run_ends") else row[bucket[:-1] + "_id"]
                    if bucket == "run_ends" or key not in buckets[bucket]:  # first row wins; last run_end wins
                        buckets[bucket][key] = row
            if problem is not None:
                problems.append(f"{path}:{lineno}: {problem}")
    except (OSError, EOFError, lzma.LZMAError) as e:  # a truncated or corrupt .gz / .xz: keep the lines read before the damage
        problems.append(f"{path}: unreadable after line {lineno} ({type(e).__name__}: {e})")

    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["errors"] = len(problems)
    with store.session() as con:
        counts["runs"] = store._insert(con, "runs", list(buckets["runs"].values()), RUNS)
        counts["measurements"] = store._insert(
            con, "measurements", list(buckets["measurements"].values()), MEASUREMENTS
        )
        counts["predictions"] = store._insert(
            con, "predictions", list(buckets["predictions"].values()), PREDICTIONS
        )
        ends = list(buckets["run_ends"].values())
        if ends:
            with registered(con, "incoming_ends", to_arrow(ends, _RUN_END)):
                counts["run_ends"] = con.execute(
                    "UPDATE runs SET status = e.status, finished_at = e.finished_at, summary = e.summary "
                    "FROM incoming_ends e WHERE runs.run_id = e.run_id AND (runs.status IS DISTINCT FROM "
                    "e.status OR runs.finished_at IS DISTINCT FROM e.finished_at)"
                ).fetchall()[0][0]
    return counts, problems
