"""User datasets as JSONL files (one JSON object per line), in three documented schemas.

  gsm8k           {"question": str, "answer": str}   GSM8K style: the answer holds the worked solution
                  and ends "#### <number>"; a bare answer ("42") is fine too (then there is no chain).
  classification  {"text": str, "label": str}       few-shot pool; the label set is the set of labels seen
  passkey         {"context": str, "question": str, "answer": str, "depth"?: float 0..1}

A malformed line (bad JSON, not an object, a missing or non-text field) is reported as
"<file>, line <n>: <what is wrong>" and skipped; every other line still loads. Blank lines are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMAS: dict[str, tuple[str, ...]] = {
    "gsm8k": ("question", "answer"),
    "classification": ("text", "label"),
    "passkey": ("context", "question", "answer"),
}
MAX_LINE_CHARS = 2_000_000


@dataclass
class LoadResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "<file>, line <n>: <problem>"


class DatasetError(ValueError):
    """The file as a whole is unusable (missing, unreadable, no valid line); a sentence for the user."""


def _derive(schema: str, rec: dict[str, Any]) -> dict[str, Any]:
    if schema == "gsm8k":
        raw = rec["answer"]
        solution, sep, final = raw.rpartition("####")
        if not sep:
            solution, final = "", raw
        solution = re.sub(r"<<[^>]*>>", "", solution).strip()  # GSM8K calculator annotations
        steps = len([ln for ln in solution.splitlines() if ln.strip()])
        return {**rec, "answer": final.strip(), "solution": solution, "steps": steps}
    if schema == "passkey" and "depth" in rec:
        depth = rec["depth"]
        if not isinstance(depth, (int, float)) or not 0 <= depth <= 1:
            raise ValueError("field 'depth' must be a number between 0 and 1")
    return rec


def parse_record(schema: str, obj: Any) -> dict[str, Any]:
    """Validate one decoded line; raises ValueError with a short description of the problem."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    rec = dict(obj)
    for name in SCHEMAS[schema]:
        if name not in rec:
            raise ValueError(f"missing field {name!r} (a {schema} line needs {', '.join(SCHEMAS[schema])})")
        value = rec[name]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"field {name!r} must be text, got {type(value).__name__}")
        rec[name] = str(value)
        if not rec[name].strip():
            raise ValueError(f"field {name!r} is empty")
    return _derive(schema, rec)


def load_jsonl(path: str | Path, schema: str) -> LoadResult:
    if schema not in SCHEMAS:
        raise DatasetError(f"Unknown schema {schema!r}; use one of {', '.join(SCHEMAS)}.")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"Data file {p} does not exist; give the path of a .jsonl file.")
    out = LoadResult()
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{p.name}, line {lineno}"
            if len(raw) > MAX_LINE_CHARS:
                out.errors.append(f"{where}: line is longer than {MAX_LINE_CHARS} bytes")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                out.errors.append(f"{where}: not UTF-8 text ({e.reason})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                out.errors.append(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            try:
                rec = parse_record(schema, obj)
            except ValueError as e:
                out.errors.append(f"{where}: {e}")
                continue
            rec["_line"] = lineno
            out.records.append(rec)
    if not out.records:
        detail = f" First problem: {out.errors[0]}" if out.errors else ""
        raise DatasetError(f"Data file {p.name} has no usable {schema} lines.{detail}")
    return out
