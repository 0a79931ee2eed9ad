"""Formatting for the pages: numbers and byte counts as text, tables made exportable (CSV, Parquet)."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import streamlit as st


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


def export_buttons(df: pd.DataFrame, stem: str, key: str, what: str = "") -> None:
    """CSV and Parquet download buttons side by side, files named `{stem}-{UTC time}`; keys `{key}_csv` and
    `{key}_parquet`; labels "Export CSV" or, with `what`, "Export {what} (CSV)"."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    label = (lambda kind: f"Export {what} ({kind})") if what else (lambda kind: f"Export {kind}")
    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button(label("CSV"), exportable(df).to_csv(index=False).encode(), file_name=f"{stem}-{stamp}.csv",
                       mime="text/csv", key=f"{key}_csv")
    c2.download_button(label("Parquet"), parquet_bytes(df), file_name=f"{stem}-{stamp}.parquet",
                       mime="application/vnd.apache.parquet", key=f"{key}_parquet")


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~=:$&\"'^%@;,/?")


def plain_markdown(text: str, max_chars: int | None = None) -> str:
    """`text` as Markdown that renders as exactly that text (every ASCII punctuation mark backslash-escaped,
    line breaks kept), for muted captions of model input: no link, image, emphasis or HTML can come out of it.
    With max_chars, only the last max_chars characters are kept, after an ellipsis."""
    if max_chars is not None and len(text) > max_chars:
        text = "…" + text[-max_chars:]
    escaped = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    # a zero-width space after each colon: Streamlit's :emoji:, :material/icon: and :color[...] never match
    escaped = escaped.replace("\\:", "\\:\u200b")
    lines = escaped.split("\n")
    # a hard break ("  " at the end) per line; leading spaces as no-break spaces so indentation shows
    return "  \n".join(line.replace(" ", "\u00a0") if line.startswith(" ") else line for line in lines) or "\u00a0"


def fmt_spread(median, lo, hi, unit: str = "", digits: int = 1) -> str:
    """'12.3 ms (11.9–14.0)': a median with the range of the runs."""
    if median is None:
        return "—"
    return f"{fmt_num(median, unit, digits)} ({fmt_num(lo, '', digits)}–{fmt_num(hi, '', digits)})"
