"""Data frames for the History page (no Streamlit, plotly or duckdb here): which device each stored row ran on,
the newest run, plot-ready rows with a capped number of series, failed models, and past generations.

    row_devices(meas, runs) -> Series          device per row: the row's own, else its run's; compile targets
                                                of the ahead-of-time kernel compile ("cuda:80", "hip:gfx90a")
                                                are no device and come back as None
    newest_run(view) -> run_id | None           the newest run with plottable rows (prompt length + a timing),
                                                else the newest run with any row
    plot_rows(view, devices, metric, max_series) -> (rows, hidden series names)
    bytes_unit(max_bytes) -> (divisor, "MiB" | "GiB")
    failed_models(run) -> {model: sentence}     models of a run that produced no result
    generation_runs(runs) -> DataFrame          runs of kind generate / rag, newest first
    generation_view(run, preds, meas) -> dict   prompt, settings, per-model output and metrics of one run
"""

from __future__ import annotations

import re

import pandas as pd

COMPILE_TARGET = re.compile(r"^(cuda|hip|rocm|sm)[:_]\w+$", re.IGNORECASE)
COMPILE_KINDS = ("kernel_aot",)  # rows of these kinds name a compile target, not a device that ran anything
TIMINGS = ("ttft_ms", "tpot_ms", "decode_tok_s", "prefill_ms", "peak_mem_bytes")
GENERATION_KINDS = ("generate", "rag")
MAX_SERIES = 8


def is_device(name) -> bool:
    return isinstance(name, str) and bool(name) and name != "auto" and not COMPILE_TARGET.match(name)


def row_devices(meas: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """The device each measurement row ran on (None for compile targets and rows without any device)."""
    if meas.empty:
        return pd.Series([], dtype=object)
    own = meas["device"].where(meas["device"].map(is_device)) if "device" in meas.columns else None
    # a row without a device (an experiment's aggregate) takes its run's: the run's commonest row device,
    # else its meta's device name
    known = meas.assign(_dev=own).dropna(subset=["_dev"])
    run_device = known.groupby("run_id")["_dev"].agg(lambda d: d.mode().iloc[0]).to_dict() if len(known) else {}
    for _, r in runs.iterrows():
        meta = r["meta"] if isinstance(r.get("meta"), dict) else {}
        dev = meta.get("device_name") or meta.get("device")
        run_device.setdefault(r["run_id"], dev if is_device(dev) else None)
    out = own.copy() if own is not None else pd.Series(None, index=meas.index, dtype=object)
    out = out.where(out.notna(), meas["run_id"].map(run_device))
    if "kind" in meas.columns:
        out = out.where(~meas["kind"].isin(COMPILE_KINDS))
    return out.astype(object).where(out.notna(), None)


def plottable(view: pd.DataFrame) -> pd.Series:
    cols = [c for c in TIMINGS if c in view.columns]
    if "prompt_tokens" not in view.columns or not cols:
        return pd.Series(False, index=view.index)
    return view["prompt_tokens"].notna() & view[cols].notna().any(axis=1)


def newest_run(view: pd.DataFrame) -> str | None:
    if view.empty:
        return None
    pick = view[plottable(view)]
    pick = pick if len(pick) else view
    return str(pick.sort_values("created_at").iloc[-1]["run_id"])


def bytes_unit(max_bytes) -> tuple[float, str]:
    big = max_bytes is not None and not pd.isna(max_bytes) and float(max_bytes) >= 2**30
    return (2**30, "GiB") if big else (2**20, "MiB")


def plot_rows(view: pd.DataFrame, devices: pd.Series, metric: str, max_series: int = MAX_SERIES
              ) -> tuple[pd.DataFrame, list[str]]:
    """Rows of `metric` against prompt length with a `device` (plots split by it) and a `series` (model, plus the
    batch size where the rows mix batch sizes); only the `max_series` series with the most rows are kept (the
    legend stays readable), the names of the others are returned."""
    if metric not in view.columns:
        return view.iloc[0:0], []
    d = view.assign(device=devices.reindex(view.index).fillna("unknown device"))
    d = d.dropna(subset=[metric, "prompt_tokens"])
    d = d[d["prompt_tokens"] > 0]
    if d.empty:
        return d, []
    series = d["model"].astype(str)
    if "batch" in d.columns and d["batch"].nunique(dropna=True) > 1:
        series = series + " · batch " + d["batch"].fillna(1).astype(int).astype(str)
    d = d.assign(series=series)
    counts = d["series"].value_counts()
    keep = list(counts.index[:max_series])
    return d[d["series"].isin(keep)], sorted(counts.index[max_series:])


def failed_models(run) -> dict[str, str]:
    """Arena / CLI generations name them in summary.failed_models, RAG questions in summary.errors."""
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    out = {}
    for key in ("failed_models", "errors"):
        found = summary.get(key)
        if isinstance(found, dict):
            out.update({str(k): str(v) for k, v in found.items() if v})
    return out


def generation_runs(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return runs
    g = runs[runs["kind"].isin(GENERATION_KINDS)].sort_values("created_at", ascending=False)
    return g.assign(failed=[", ".join(failed_models(r)) for _, r in g.iterrows()])


def generation_view(run, preds: pd.DataFrame, meas: pd.DataFrame) -> dict:
    """One stored generation (Arena, CLI generate, RAG question): what was asked and what each model did."""
    cfg = run["config"] if isinstance(run.get("config"), dict) else {}
    columns = []
    def mode_of(e) -> str | None:
        return e.get("mode") if isinstance(e, dict) else None

    for _, p in preds.iterrows():
        extra = p["extra"] if isinstance(p.get("extra"), dict) else {}
        m = meas[meas["model"] == p["model"]] if not meas.empty else meas
        if len(m) > 1 and "extra" in m.columns:  # RAG: the model's open- and closed-book rows
            m = m[[mode_of(e) == extra.get("mode") for e in m["extra"]]]
        row = m.iloc[0] if len(m) else None
        metrics = {}
        if row is not None:
            for k in ("prompt_tokens", "new_tokens", "ttft_ms", "prefill_ms", "tpot_ms", "decode_tok_s",
                      "cache_bytes", "cache_kind", "peak_mem_bytes", "peak_mem_kind", "path", "device", "dtype",
                      "warmup", "repeats"):
                if k in row.index and row[k] is not None and not (isinstance(row[k], float) and row[k] != row[k]):
                    metrics[k] = row[k]
        label = p["model"] + (" (closed-book)" if extra.get("mode") == "closed_book" else "")
        columns.append({"model": p["model"], "label": label,
                        "prompt": p["prompt"], "output": p["output"], "finish_reason": extra.get("finish_reason"),
                        "metrics": metrics})
    return {"kind": run["kind"], "status": run["status"], "prompt": cfg.get("prompt") or cfg.get("question"),
            "settings": cfg.get("settings") or {}, "columns": columns, "failed": failed_models(run),
            "config": cfg}
