"""History: every stored measurement (dashboard and CLI runs), filtered, plotted against prompt length (the
newest run by default, one panel per device, a capped legend), and exported as CSV or Parquet; experiment
accuracies over time, and two runs of one experiment compared instance by instance (the Experiments tab);
past generations with their prompt, outputs, settings and metrics (the Generations tab). Runs in which a model
failed are marked as failed, with the sentence of each failure."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from backend.experiments.config import RUN_KIND
from backend.experiments.views import accuracy_history
from backend.generation.compare import error_sentence
from backend.history import (
    bytes_unit,
    failed_models,
    generation_runs,
    generation_view,
    newest_run,
    plot_rows,
    row_devices,
)
from pages.components import experiment as kit
from pages.components.charts import accuracy_over_time, measurement_scatter
from pages.components.fmt import export_buttons, exportable, fmt_bytes, fmt_num
from pages.components.resources import store_or_stop

PLOTS = [("ttft_ms", "Time to first token (ms)"), ("tpot_ms", "Time per output token, median (ms)"),
         ("decode_tok_s", "Decode tokens/s"), ("peak_mem", "Peak memory of the process ({unit})")]
FIRST_COLUMNS = ["created_at", "kind", "model", "family", "device", "dtype", "path", "batch", "prompt_tokens",
                 "new_tokens", "ttft_ms", "prefill_ms", "tpot_ms", "tpot_p90_ms", "decode_tok_s", "peak_mem_bytes",
                 "peak_mem_kind", "cache_bytes", "cache_kind", "metric", "value", "n"]

EXPERIMENT_OF_KIND = {kind: experiment for experiment, kind in RUN_KIND.items()}
# Toy-world evaluation rows (results/train_h100.jsonl) are plain measurements with n and a 95% CI; their
# `extra` keys that are not the sweep point:
EVAL_METRICS = ("accuracy", "exact_match")
EVAL_NOT_POINT = {"task", "fewshot_task", "correct", "seconds", "seed", "chance", "max_context_tokens",
                  "mean_length", "tokens", "ci_method"}


def eval_as_aggregates(m: pd.DataFrame) -> pd.DataFrame:
    """Measurement rows of metric accuracy / exact_match with n and a CI (the toy-world evaluation) in the
    experiments' aggregate shape (metric "accuracy[<metric>]", extra task/params/primary), so that
    views.accuracy_history reads both kinds of rows."""
    if m.empty or "metric" not in m.columns:
        return m.iloc[0:0]
    m = m[m["metric"].isin(EVAL_METRICS) & m["n"].notna() & m["ci_low"].notna() & m["ci_high"].notna()]

    def extra(e) -> dict:
        e = e if isinstance(e, dict) else {}
        task = "-".join(str(e[k]) for k in ("task", "fewshot_task") if e.get(k))
        return {"task": task or None, "primary": True,
                "params": {k: v for k, v in e.items() if k not in EVAL_NOT_POINT and v is not None}}

    return m.assign(metric=[f"accuracy[{x}]" for x in m["metric"]], extra=[extra(e) for e in m["extra"]])


def run_label(row) -> str:
    name = row.get("name") if isinstance(row.get("name"), str) else ""
    when = pd.Timestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M") if pd.notna(row.get("created_at")) else ""
    failed = failed_models(row)
    status = f" · FAILED: {', '.join(failed)}" if failed else (f" · {row['status']}" if row.get("status") not in
                                                               ("completed", None) else "")
    return f"{row['kind']} · {name + ' · ' if name else ''}{when}{status} · {str(row['run_id'])[:8]}"


def show_generation(store, runs) -> None:
    """A past generation (Arena, CLI generate, RAG question): prompt, settings, each model's output and metrics."""
    gens = generation_runs(runs)
    if gens.empty:
        st.info("No generation is stored yet. Generate on the Arena or RAG page (or `python -m backend "
                "generate --prompt ...`); each one appears here.")
        return
    labels = dict(zip(gens["run_id"], gens["label"], strict=True))
    run_id = st.selectbox("Generation (newest first)", list(gens["run_id"]), format_func=labels.get,
                          key="history_gen_run")
    run = gens[gens["run_id"] == run_id].iloc[0]
    view = generation_view(run, store.predictions(run_id=run_id), store.measurements(run_ids=[run_id]))
    for model, why in view["failed"].items():
        st.error(f"{model} failed in this run: {why}")
    if view["prompt"]:
        st.caption("Prompt" if view["kind"] == "generate" else "Question")
        st.code(view["prompt"], language=None, wrap_lines=True)
    st.caption("Settings: " + ", ".join(f"{k} {v}" for k, v in view["settings"].items()))
    if not view["columns"]:
        st.caption("No model produced output in this run.")
        return
    for col, c in zip(st.columns(len(view["columns"])), view["columns"], strict=True):
        with col:
            st.markdown(f"**{c['label']}**")
            if c["prompt"] != view["prompt"]:
                with st.expander("The exact prompt"):
                    st.code(c["prompt"], language=None, wrap_lines=True)
            st.code(c["output"] or " ", language=None, wrap_lines=True)
            m = c["metrics"]
            shown = {k: (fmt_bytes(v) if k.endswith("_bytes") else fmt_num(v, digits=2) if isinstance(v, float)
                         else str(v)) for k, v in m.items()}
            table = pd.DataFrame({"value": shown})
            table.index.name = "metric"
            st.table(table)


st.title("History")
store = store_or_stop()

try:
    runs = store.runs()
    meas = store.measurements()
except Exception as e:
    st.error(f"The results store could not be read: {error_sentence(e)}")
    st.stop()

if meas.empty:
    st.info("No measurements are stored yet. Generate something on the Arena page, or import committed results "
            "from a terminal:")
    st.code("python -m backend import-results results/", language="bash")
    if not runs.empty:
        st.dataframe(exportable(runs), hide_index=True, key="history_runs_only")
    st.stop()

if "kind" not in meas.columns:  # the store joins the run's kind in; older stores did not
    meas = meas.merge(runs[["run_id", "kind"]], on="run_id", how="left")
meas["created_at"] = pd.to_datetime(meas["created_at"], utc=True, errors="coerce")
runs["label"] = runs.apply(run_label, axis=1)
runs["created_at"] = pd.to_datetime(runs["created_at"], utc=True, errors="coerce")
# The device each row ran on: a row without one (an experiment's aggregate) takes its run's; compile targets
# of the ahead-of-time kernel compile ("cuda:80") are no device (backend.history.row_devices).
row_device = row_devices(meas, runs)

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    kinds = c1.multiselect("Kind", sorted(meas["kind"].dropna().unique()), key="history_kind")
    models = c2.multiselect("Model", sorted(meas["model"].dropna().unique()), key="history_model")
    devices = c3.multiselect("Device", sorted(row_device.dropna().unique()), key="history_device",
                             help="Devices that ran something; compile targets of the kernel build are not devices.")
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
    view = view[row_device.loc[view.index].isin(devices)]
if run_ids:
    view = view[view["run_id"].isin(run_ids)]
lo = hi = None
if isinstance(dates, tuple | list) and len(dates) == 2:
    lo = pd.Timestamp(dates[0], tz="UTC")
    hi = pd.Timestamp(dates[1], tz="UTC") + pd.Timedelta(days=1)
    view = view[(view["created_at"] >= lo) & (view["created_at"] < hi)]

tab_meas, tab_exp, tab_gen = st.tabs(["Measurements", "Experiments", "Generations"])
with tab_meas:
    scope, mview = "all", view
    if not run_ids and not mview.empty:
        newest = newest_run(mview)
        scope = st.radio("Rows", ["newest", "all"], horizontal=True, key="history_scope",
                         format_func=lambda s: f"Newest run ({labels.get(newest, newest)})" if s == "newest"
                         else "Every run matching the filters")
        if scope == "newest":
            mview = mview[mview["run_id"] == newest]
    st.caption(f"{len(mview)} of {len(meas)} measurement rows match.")
    if mview.empty:
        st.info("No measurement matches these filters. Clear a filter to see rows again.")
    else:
        unit_div, unit = bytes_unit(mview["peak_mem_bytes"].max() if "peak_mem_bytes" in mview.columns else None)
        plot_df = mview.assign(peak_mem=mview["peak_mem_bytes"] / unit_div) if "peak_mem_bytes" in mview.columns else mview
        cols = st.columns(2)
        hidden_all: set[str] = set()
        for i, (metric, title) in enumerate(PLOTS):
            title = title.format(unit=unit)
            d, hidden = plot_rows(plot_df, row_device, metric)
            hidden_all |= set(hidden)
            with cols[i % 2]:
                if d.empty:
                    st.caption(f"{title}: no rows with this metric and a prompt length.")
                    continue
                hover = [c for c in ("run_id", "kind", "path", "dtype", "batch", "new_tokens", "peak_mem_kind")
                         if c in d.columns]
                st.plotly_chart(measurement_scatter(d, metric, title, hover), key=f"history_plot_{metric}")
        st.caption("Peak memory is the whole process's (CPU: resident set size, every loaded model and the app; GPU: "
                   "memory allocated by torch); each model's own weights + cache are in the Arena's columns.")
        if hidden_all:
            st.caption(f"{len(hidden_all)} more series are not drawn (the plots keep the 8 with the most rows; they "
                       f"are in the table): {', '.join(sorted(hidden_all)[:12])}{' ...' if len(hidden_all) > 12 else ''}. "
                       "Filter by model or run to see them.")

        st.subheader("Measurements")
        first_cols = [c for c in FIRST_COLUMNS if c in mview.columns]
        mview = mview[first_cols + [c for c in mview.columns if c not in first_cols]]
        st.dataframe(exportable(mview), hide_index=True, key="history_measurements")
        export_buttons(mview, "measurements", "history")

with tab_exp:
    acc = accuracy_history(pd.concat([view, eval_as_aggregates(view)], ignore_index=True))
    exp_runs = runs[runs["kind"].isin(EXPERIMENT_OF_KIND)]
    if kinds:
        exp_runs = exp_runs[exp_runs["kind"].isin(kinds)]
    if run_ids:
        exp_runs = exp_runs[exp_runs["run_id"].isin(run_ids)]
    if lo is not None:
        exp_runs = exp_runs[(exp_runs["created_at"] >= lo) & (exp_runs["created_at"] < hi)]
    st.subheader("Accuracy over time")
    if acc.empty:
        st.info("No experiment accuracy matches these filters. Run an experiment (Few-shot, Long context, "
                "Chain-of-thought or RAG page, or `python -m backend experiment ...`), or clear a filter.")
    else:
        tasks = sorted(acc["task"].dropna().astype(str).unique())
        e1, e2 = st.columns([1, 2])
        task = e1.selectbox("Task", tasks, key="history_exp_task")
        acc = acc[acc["task"].astype(str) == task]
        all_points = sorted(acc["point"].unique(), key=lambda p: (len(p), p))
        points = e2.multiselect("Sweep points (none: all)", all_points, key=f"history_exp_points_{task}")
        if points:
            acc = acc[acc["point"].isin(points)]
        st.plotly_chart(accuracy_over_time(acc, f"Accuracy over time · {task}"), key="history_exp_plot")
        st.caption(f"{acc['run_id'].nunique()} run(s), {len(acc)} points; error bars: 95% Wilson interval "
                   "(the primary answer-extraction rule of each task).")
        st.dataframe(acc, hide_index=True, key="history_exp_table")
    missing = exp_runs[~exp_runs["run_id"].isin(set(accuracy_history(meas)["run_id"]))]
    if not missing.empty:
        st.caption("Experiment runs without stored accuracies (cancelled, failed or still running; their "
                   "experiment page recomputes partial accuracies from the predictions): "
                   + "; ".join(missing["label"]))

    if exp_runs.empty:
        st.caption("No experiment run matches these filters, so there is nothing to compare.")
    else:
        present = [k for k in RUN_KIND.values() if k in set(exp_runs["kind"])]
        kind = st.selectbox("Experiment", present, format_func=EXPERIMENT_OF_KIND.get, key="history_cmp_kind")
        same = kit.stored_runs(store, EXPERIMENT_OF_KIND[kind])
        kit.compare_section(store, same[same["run_id"].isin(set(exp_runs["run_id"]))], key="history_exp")

with tab_gen:
    show_generation(store, runs)

st.subheader("Runs")
shown = runs[runs["run_id"].isin(set(view["run_id"]))] if not view.empty else runs.iloc[0:0]
shown = shown.assign(**{"failed models": ["; ".join(f"{m}: {w}" for m, w in failed_models(r).items())
                                          for _, r in shown.iterrows()]})
st.dataframe(exportable(shown.drop(columns=["label"])), hide_index=True, key="history_runs")
