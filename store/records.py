"""JSONL result records: the format GPU machines write and `Store.import_jsonl` reads.

This module must not import duckdb, pandas or pyarrow: machines that run experiments may have none
of them. One JSON object per line, each with a stable id so importing a file twice adds nothing:

    {"type": "run", "run_id": hex, "kind": str, "name": str|null, "created_at": iso, "config": {}, "meta": {}}
    {"type": "run_end", "run_id": hex, "status": str, "finished_at": iso, "summary": {}|null}
    {"type": "measurement", "measurement_id": hex, "run_id": hex, "created_at": iso, "data": {row}}
    {"type": "prediction", "prediction_id": hex, "run_id": hex, "created_at": iso, "data": {row}}

`data` is the row exactly as the experiment passed it (keys the store has no column for end up in the
`extra` JSON column on import). Timestamps are UTC, ISO 8601.
"""

from __future__ import annotations

import gzip
import json
import lzma
import math
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

RUN_STATUSES = ("running", "completed", "cancelled", "failed", "interrupted")  # interrupted: store/liveness.py
END_STATUSES = ("completed", "cancelled", "failed")
RECORD_TYPES = ("run", "run_end", "measurement", "prediction")


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Current UTC time as a naive datetime (the store keeps every timestamp in UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _json_default(obj):
    """Make numpy scalars/arrays, dataclasses, paths and datetimes JSON-serialisable."""
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        return obj.item()  # numpy / torch scalar
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _clean_floats(obj):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def dumps(obj) -> str:
    """Compact JSON, one line, NaN written as null, numpy/dataclass values converted."""
    text = json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    if "NaN" in text or "Infinity" in text:
        text = json.dumps(_clean_floats(json.loads(text)), ensure_ascii=False, separators=(",", ":"))
    return text


def check_end_status(status: str) -> None:
    if status not in END_STATUSES:
        raise ValueError(f"A run can finish as one of {', '.join(END_STATUSES)}, not {status!r}.")


def run_record(kind: str, config: dict, meta: dict, name: str | None = None, run_id: str | None = None) -> dict:
    if not kind or not isinstance(kind, str):
        raise ValueError("A run needs a kind (a short string such as 'bench' or 'fewshot').")
    return {
        "type": "run",
        "run_id": run_id or new_id(),
        "kind": kind,
        "name": name,
        "created_at": utc_now().isoformat(),
        "config": config or {},
        "meta": meta or {},
    }


def run_end_record(run_id: str, status: str = "completed", summary: dict | None = None) -> dict:
    check_end_status(status)
    return {
        "type": "run_end",
        "run_id": run_id,
        "status": status,
        "finished_at": utc_now().isoformat(),
        "summary": summary,
    }


def row_record(kind: str, run_id: str, row: dict) -> dict:
    """A measurement or prediction line; the row's own id/created_at are kept when it has them."""
    if not isinstance(row, dict):
        raise ValueError(f"Each {kind} must be a dict, got {type(row).__name__}.")
    id_key = f"{kind}_id"
    data = {k: v for k, v in row.items() if k not in (id_key, "run_id", "created_at")}
    created = row.get("created_at") or utc_now()
    return {
        "type": kind,
        id_key: row.get(id_key) or new_id(),
        "run_id": run_id,
        "created_at": created.isoformat() if isinstance(created, datetime) else str(created),
        "data": data,
    }


class RecordWriter:
    """Appends result records to a JSONL file; same write methods as the DuckDB store.

    Safe for several threads (one lock) and several processes (each call is a single O_APPEND write
    of whole lines). A line cut short by a killed process is closed with a newline before the next
    write, so only that line is lost (the importer reports it by file and line number).
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._checked_tail = False
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, records: list[dict]) -> None:
        payload = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if not self._checked_tail:
                    self._checked_tail = True
                    if _ends_without_newline(self.path):
                        payload = b"\n" + payload
                os.write(fd, payload)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def start_run(self, kind: str, config: dict, meta: dict, name: str | None = None) -> str:
        rec = run_record(kind, config, meta, name)
        self._append([rec])
        return rec["run_id"]

    def finish_run(self, run_id: str, status: str = "completed", summary: dict | None = None) -> None:
        self._append([run_end_record(run_id, status, summary)])

    def add_measurements(self, run_id: str, rows: list[dict]) -> int:
        recs = [row_record("measurement", run_id, r) for r in rows]
        if recs:
            self._append(recs)
        return len(recs)

    def add_predictions(self, run_id: str, rows: list[dict]) -> int:
        recs = [row_record("prediction", run_id, r) for r in rows]
        if recs:
            self._append(recs)
        return len(recs)

    def done_instances(self, run_id: str, model: str) -> set[str]:
        """Instance ids already predicted for (run, model) in this file: lets an experiment resume."""
        done: set[str] = set()
        if not self.path.exists():
            return done
        for _lineno, rec, _err in iter_records(self.path):
            if rec and rec.get("type") == "prediction" and rec.get("run_id") == run_id:
                data = rec.get("data") or {}
                if data.get("model") == model and data.get("instance_id") is not None:
                    done.add(str(data["instance_id"]))
        return done


def _ends_without_newline(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


# A results file is plain JSONL or compressed: .gz (gzip) or .xz (LZMA, 35-60% smaller than gzip on these
# files, which keeps the tracked tree under the 64 MiB a GPU call carries). Every reader opens them here.
RESULT_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.xz")


def open_results(path, errors: str = "strict"):
    """Open a results file (plain, .gz or .xz by its name) for reading text, UTF-8."""
    name = str(path)
    opener = gzip.open if name.endswith(".gz") else lzma.open if name.endswith(".xz") else open
    return opener(path, "rt", encoding="utf-8", errors=errors)


def result_files(folder, pattern: str = "*", recursive: bool = False) -> list[Path]:
    """Results files in `folder` whose name is `pattern` + one of RESULT_SUFFIXES, sorted by path."""
    folder = Path(folder)
    glob = folder.rglob if recursive else folder.glob
    return sorted({p for suffix in RESULT_SUFFIXES for p in glob(pattern + suffix)})


def iter_records(path: Path):
    """Yield (line_number, record or None, problem or None) for each non-blank line of a JSONL file
    (plain, .gz or .xz: see `open_results`)."""
    with open_results(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, None, f"not valid JSON: {e.msg} (column {e.colno})"
                continue
            if not isinstance(rec, dict):
                yield lineno, None, f"expected a JSON object, got {type(rec).__name__}"
            elif rec.get("type") not in RECORD_TYPES:
                yield lineno, None, f"unknown record type {rec.get('type')!r} (expected one of {', '.join(RECORD_TYPES)})"
            else:
                yield lineno, rec, None
