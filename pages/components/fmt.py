"""Formatting for the pages: numbers and byte counts as text, tables made exportable (CSV, Parquet)."""

from __future__ import annotations

import io
import json

import pandas as pd


def fmt_num(x, unit: str = "", digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    return f"{x:,.{digits}f}{unit}"


def fmt_bytes(n) -> str:
    if n is None or (isinstance(n, float) and n != n):
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def exportable(df: pd.DataFrame) -> pd.DataFrame:
    """Dict / list cells (config, extra) as JSON text, so CSV and Parquet get one type per column."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, dict | list)).any():
            out[c] = out[c].map(lambda v: json.dumps(v, default=str) if isinstance(v, dict | list) else v)
    return out


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    exportable(df).to_parquet(buf, index=False)
    return buf.getvalue()
