"""History: every stored measurement (dashboard and CLI runs), filtered, plotted against prompt length,
and exported as CSV or Parquet."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.express as px
import streamlit as st

from pages import ui

PLOTS = [("ttft_ms", "Time to first token (ms)"), ("tpot_ms", "Time per output token, median (ms)"),
         ("decode_tok_s", "Decode tokens/s"), ("peak_mem_mib", "Peak memory (MiB)")]
FIRST_COLUMNS = ["created_at", "kind", "model", "family", "device", "dtype", "path", "batch", "prompt_tokens",
                 "new_tokens", "ttft_ms", "prefill_ms", "tpot_ms", "tpot_p90_ms", "decode_tok_s", "peak_mem_bytes",
                 "peak_mem_kind", "cache_bytes", "cache_kind", "metric", "value", "n"]


def run_label(row) -> str:
    name = row.get("name") if isinstance(row.get("name"), str) else ""
    when = pd.Timestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M") if pd.notna(row.get("created_at")) else ""
    return f"{row['kind']} · {name + ' · ' if name else ''}{when} · {str(row['run_id'])[:8]}"


st.title("History")
try:
    store = ui.get_store()
except Exception as e:
    st.error(f"The results store could not be opened: {ui.error_sentence(e)}")
    st.stop()
ui.ensure_results_imported()

try:
    runs = store.runs()
    meas = store.measurements()
except Exception as e:
    st.error(f"The results store could not be read: {ui.error_sentence(e)}")
    st.stop()

if meas.empty:
    st.info("No measurements are stored yet. Generate something on the Arena page, or import committed results "
            "from a terminal:")
    st.code("python -m backend import-results results/", language="bash")
    if not runs.empty:
        st.dataframe(ui.exportable(runs), hide_index=True, key="history_runs_only")
    st.stop()

if "kind" not in meas.columns:  # the store joins the run's kind in; older stores did not
    meas = meas.merge(runs[["run_id", "kind"]], on="run_id", how="left")
meas["created_at"] = pd.to_datetime(meas["created_at"], utc=True, errors="coerce")
runs["label"] = runs.apply(run_label, axis=1)

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    kinds = c1.multiselect("Kind", sorted(meas["kind"].dropna().unique()), key="history_kind")
    models = c2.multiselect("Model", sorted(meas["model"].dropna().unique()), key="history_model")
    devices = c3.multiselect("Device", sorted(meas["device"].dropna().unique()), key="history_device")
    c4, c5 = st.columns([1, 2])
    first, last = meas["created_at"].min(), meas["created_at"].max()
    today = dt.datetime.now(dt.UTC).date()
    dates = c4.date_input("Date range (UTC)", value=(first.date() if pd.notna(first) else today,
                                                       last.date() if pd.notna(last) else today),
                          key="history_dates")
    labels = dict(zip(runs["run_id"], runs["label"], strict=False))
    run_ids = c5.multiselect("Run", [r for r in runs["run_id"] if r in set(meas["run_id"])],
                             format_func=lambda r: labels.get(r, r), key="history_run")

view = meas
if kinds:
    view = view[view["kind"].isin(kinds)]
if models:
    view = view[view["model"].isin(models)]
if devices:
    view = view[view["device"].isin(devices)]
if run_ids:
    view = view[view["run_id"].isin(run_ids)]
if isinstance(dates, tuple | list) and len(dates) == 2:
    lo = pd.Timestamp(dates[0], tz="UTC")
    hi = pd.Timestamp(dates[1], tz="UTC") + pd.Timedelta(days=1)
    view = view[(view["created_at"] >= lo) & (view["created_at"] < hi)]

st.caption(f"{len(view)} of {len(meas)} measurement rows match.")
if view.empty:
    st.info("No measurement matches these filters. Clear a filter to see rows again.")
else:
    plot_df = view.assign(peak_mem_mib=view["peak_mem_bytes"] / 2**20,
                          series=view["model"].astype(str) + " · " + view["device"].astype(str))
    cols = st.columns(2)
    for i, (metric, title) in enumerate(PLOTS):
        d = plot_df.dropna(subset=[metric, "prompt_tokens"])
        with cols[i % 2]:
            if d.empty:
                st.caption(f"{title}: no rows with this metric.")
                continue
            hover = [c for c in ("run_id", "kind", "path", "dtype", "batch", "new_tokens", "peak_mem_kind")
                     if c in d.columns]
            fig = px.scatter(d.sort_values("prompt_tokens"), x="prompt_tokens", y=metric, color="series",
                             hover_data=hover, title=title, labels={"prompt_tokens": "prompt tokens",
                                                                     metric: title, "series": "model · device"})
            st.plotly_chart(fig, key=f"history_plot_{metric}")

    st.subheader("Measurements")
    first_cols = [c for c in FIRST_COLUMNS if c in view.columns]
    view = view[first_cols + [c for c in view.columns if c not in first_cols]]
    st.dataframe(ui.exportable(view), hide_index=True, key="history_measurements")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    d1, d2, _ = st.columns([1, 1, 4])
    d1.download_button("Export CSV", ui.exportable(view).to_csv(index=False).encode(),
                       file_name=f"measurements-{stamp}.csv", mime="text/csv", key="history_csv")
    d2.download_button("Export Parquet", ui.parquet_bytes(view), file_name=f"measurements-{stamp}.parquet",
                       mime="application/vnd.apache.parquet", key="history_parquet")

st.subheader("Runs")
shown = runs[runs["run_id"].isin(set(view["run_id"]))] if not view.empty else runs.iloc[0:0]
st.dataframe(ui.exportable(shown.drop(columns=["label"])), hide_index=True, key="history_runs")
