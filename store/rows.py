"""Turn experiment rows (dicts) into typed Arrow tables for bulk inserts, and JSON columns back.

Known keys are coerced to the column's type (a clear StoreError names the bad key and row); unknown
keys of a measurement or prediction row are kept in its `extra` JSON column.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from store.errors import StoreError
from store.records import dumps

_ARROW = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
}


def _to_int(v):
    if hasattr(v, "item") and not isinstance(v, (int, float, str)):
        v = v.item()  # numpy / torch scalar
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    raise ValueError(f"expected an integer, got {v!r}")


def _to_float(v):
    if hasattr(v, "item") and not isinstance(v, (int, float)):
        v = v.item()
    if isinstance(v, (int, float)):
        f = float(v)
        return None if math.isnan(f) else f
    if isinstance(v, str):
        return float(v)
    raise ValueError(f"expected a number, got {v!r}")


def to_timestamp(v) -> datetime:
    """Naive UTC datetime from a datetime, pandas Timestamp or ISO 8601 string."""
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        v = pd.Timestamp(v).to_pydatetime()
    if isinstance(v, str):
        v = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    elif isinstance(v, date) and not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    if not isinstance(v, datetime):
        raise ValueError(f"expected a timestamp, got {v!r}")
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v


def _is_missing(v) -> bool:
    """None, NaN, pandas NA/NaT: stored as NULL (rows often come from DataFrame.to_dict())."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _coerce(value, typ: str):
    if _is_missing(value):
        return None
    if typ == "VARCHAR":
        return value if isinstance(value, str) else dumps(value) if isinstance(value, (dict, list)) else str(value)
    if typ == "JSON":
        return dumps(value)
    if typ in ("INTEGER", "BIGINT"):
        i = _to_int(value)
        limit = 2**31 if typ == "INTEGER" else 2**63
        if i is not None and not -limit <= i < limit:
            raise ValueError(f"{i} does not fit a {typ}")
        return i
    if typ == "DOUBLE":
        return _to_float(value)
    if typ == "TIMESTAMP":
        return to_timestamp(value)
    raise AssertionError(typ)


def normalize(row: dict, columns: dict[str, str], what: str = "row", extra: bool = True) -> dict:
    """Coerce `row` to `columns`; unknown keys go to row["extra"] (when the table has one).

    Raises ValueError naming the first key whose value does not fit its column.
    """
    if not isinstance(row, dict):
        raise ValueError(f"each {what} must be a dict, got {type(row).__name__}")
    out: dict = {}
    leftovers: dict = {}
    for k, v in row.items():
        if k in columns and k != "extra":
            try:
                out[k] = _coerce(v, columns[k])
            except (ValueError, TypeError, OverflowError) as e:
                raise ValueError(f"{what} key {k!r}: {e}") from None
        else:
            leftovers[k] = v
    if extra and "extra" in columns:
        given = row.get("extra")
        merged = dict(given) if isinstance(given, dict) else ({} if given is None else {"extra": given})
        merged.update({k: v for k, v in leftovers.items() if k != "extra"})
        out["extra"] = dumps(merged) if merged else None
    return out


def to_arrow(rows: list[dict], columns: dict[str, str]) -> pa.Table:
    """Normalized rows -> Arrow table with every column of the table (missing values null)."""
    schema = pa.schema([(name, _ARROW[typ]) for name, typ in columns.items()])
    data = {name: [r.get(name) for r in rows] for name in columns}
    return pa.Table.from_pydict(data, schema=schema)


def normalize_all(rows: list[dict], columns: dict[str, str], what: str) -> list[dict]:
    """Normalize a batch; a bad row raises StoreError naming its position."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(normalize(row, columns, what))
        except ValueError as e:
            raise StoreError(f"{what} {i} cannot be stored: {e}. Nothing from this batch was written.") from None
    return out


def decode_json_columns(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Parse JSON text columns into Python objects (dict/list/None) in place; returns df."""
    for name, typ in columns.items():
        if typ == "JSON" and name in df.columns:
            df[name] = [json.loads(v) if isinstance(v, str) else None for v in df[name]]
    return df
