"""Performance: the fair speed and memory benchmark (`python -m backend bench`), SSM vs transformer.

Prefill time and time per output token against context length, throughput against batch size, peak
memory and cache bytes against context length, the crossovers, and the Mamba paper's throughput setting
(prompt 2048, 128 new tokens, largest batch each fits), for up to two stored runs side by side.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.bench import analysis as A
from backend.generation.compare import error_sentence
from pages.components.charts import batch_throughput, context_lines, prefill_breakdown_bars, series_colors
from pages.components.fmt import exportable
from pages.components.resources import store_or_stop

PAPER = (2048, 128)

st.title("Performance")
st.caption(
    "Each family on its best standard path through the same decode loop: the transformer with SDPA, a static "
    "KV cache and a CUDA-graph-captured step; the SSMs on the path recorded with each row. Warm-up, device "
    "synchronisation, medians over repeats. Plain `generate()` appears only as a labelled baseline. On a CPU the "
    "SSMs run `cpu-chunked` (compiled Mamba-1 scan, chunked Mamba-2 SSD, fused decode step); runs labelled "
    "`kernels=reference` are the previous one-position-at-a-time path, kept to compare against."
)

store = store_or_stop()

try:
    runs = store.runs(kind="bench")
except Exception as e:
    st.error(f"The results store could not be read: {error_sentence(e)}")
    st.stop()

if runs.empty:
    st.info("No benchmark runs are stored yet. Run the benchmark on a GPU, or import the committed results:")
    st.code("python -m backend bench --models 130m,1.4b --jsonl results/bench_mine.jsonl\n"
            "python -m backend import-results results/", language="bash")
    st.stop()


def _device(row) -> str:
    meta = row["meta"] if isinstance(row.get("meta"), dict) else {}
    return str(meta.get("device_name") or meta.get("device") or "?")


def _label(row) -> str:
    device = _device(row)
    when = pd.Timestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M") if pd.notna(row.get("created_at")) else ""
    name = f"{row['name']} · " if isinstance(row.get("name"), str) and row["name"] else ""
    return f"{name}{device} · {when} · {str(row['run_id'])[:8]}"


labels = {r["run_id"]: _label(r) for _, r in runs.iterrows()}
devices = {r["run_id"]: _device(r) for _, r in runs.iterrows()}
gpu_first = sorted(runs["run_id"], key=lambda r: "cpu" in labels[r].lower())
chosen = st.multiselect("Runs to compare (up to two)", list(runs["run_id"]), default=gpu_first[:1],
                        format_func=lambda r: labels[r], max_selections=2, key="perf_runs")
if not chosen:
    st.info("Choose one or two runs above.")
    st.stop()

meas = store.measurements(kinds="bench", run_ids=chosen, expand_extra=True)
if meas.empty:
    st.warning("The chosen runs have no measurements.")
    st.stop()
short = {r: labels[r].split(" · ")[-1] for r in chosen}
meas["run"] = meas["run_id"].map(short)
multi = len(chosen) > 1
for run_id in chosen:
    run = runs[runs["run_id"] == run_id].iloc[0]
    summary = run["summary"] if isinstance(run.get("summary"), dict) else {}
    if run.get("status") != "completed":
        st.warning(f"Run {short[run_id]} ended as '{run.get('status')}': its later points are missing "
                   f"(see the errors below).")
    if summary.get("not_run"):
        with st.expander(f"Points of run {short[run_id]} that did not run ({len(summary['not_run'])})"):
            st.markdown("\n".join(f"- {x}" for x in summary["not_run"]))
if "device_kind" in meas.columns and (meas["device_kind"] == "cpu").any():
    st.warning("Some rows are CPU timings (labelled CPU): useful for checking the pipeline, not for speed claims.")

pairs = A.pairs_in(meas)
if not pairs:
    st.warning("These runs hold no SSM/transformer pair with results for both models; the plots show every model.")
pair = st.selectbox("Pair", pairs, format_func=lambda p: f"{p[0]} vs {p[1]}", key="perf_pair") if pairs else None
models = list(pair) if pair else sorted(meas["model"].dropna().unique())
view = meas[meas["model"].isin(models)].copy()
view["series"] = view["model"] + (" · " + view["run"] if multi else "")
SERIES_COLORS = series_colors(view["series"].unique())


# ---------------------------------------------------------------- what the data says
st.subheader("What the data says")
for run_id in chosen:
    d = meas[meas["run_id"] == run_id]
    device = devices[run_id]
    with st.container(border=True):
        if multi:
            st.markdown(f"**{labels[run_id]}**")
        for ssm, tf in (A.pairs_in(d) or []):
            r = A.paper_ratio(d, ssm, tf, *PAPER)
            c1, c2 = st.columns([1, 4])
            c1.metric(f"{ssm} / {tf}", A.fmt_ratio(r["ratio"]),
                      help="Throughput (batch x new tokens / (prefill + decode time)) at prompt 2048 + 128 new "
                           "tokens, each model at the largest batch that ran")
            lines = [A.claim_sentence(r, device)]
            for y, what in (("tpot_ms", "decode (time per output token, batch 1)"),
                            ("prefill_ms", "prefill (batch 1)")):
                c = A.crossover(A.curve(d, ssm, y), A.curve(d, tf, y), y)
                lines.append(A.crossover_sentence(c, ssm, tf, what))
            c2.markdown("\n\n".join(lines))


def _crossovers(y: str) -> list[tuple[float, str]]:
    """(x, label) of each run's crossover of the chosen pair on `y`, for dotted lines."""
    out = []
    for run_id in chosen if pair else []:
        d = meas[meas["run_id"] == run_id]
        c = A.crossover(A.curve(d, pair[0], y), A.curve(d, pair[1], y), y)
        if c["kind"] == "crossing":
            out.append((c["x"], f"crossover ≈ {c['x']:,.0f}" + (f" ({short[run_id]})" if multi else "")))
    return out


def _context_plot(y: str, title: str, log_y: bool = True):
    pts = A.points(view)
    d = pts[(pts["batch"] == 1) & pts[y].notna()] if y in pts.columns else pts.iloc[0:0]
    if d.empty:
        st.caption(f"No rows for {title.lower()}.")
        return
    d = d.groupby(["series", "prompt_tokens"], as_index=False)[y].median()
    fig = context_lines(d, y, title, SERIES_COLORS, log_y=log_y, crossovers=_crossovers(y))
    st.plotly_chart(fig, width="stretch", theme=None)


st.subheader("Against context length (batch 1)")
c1, c2 = st.columns(2)
with c1:
    _context_plot("prefill_ms", "Prefill time (ms)")
with c2:
    _context_plot("tpot_ms", "Time per output token, median (ms)")
c3, c4 = st.columns(2)
with c3:
    _context_plot("peak_mem_bytes", "Peak memory (bytes)")
with c4:
    _context_plot("cache_bytes", "Cache bytes (KV or conv + SSM state)")
    split = A.cache_split_sentences(view)
    if split:
        st.markdown("One sequence's cache, state + KV:\n" + "\n".join(f"- {s}" for s in split))
    kv = A.points(view)
    kv = kv[kv["cache_kind"] == "kv"] if "cache_kind" in kv.columns else kv.iloc[0:0]
    if not kv.empty:
        note = ("KV cache bytes count the positions written (prompt + generated tokens, every layer's K and V); "
                "the static cache's whole allocation is the `cache_alloc_bytes` column (All rows).")
        old = kv["cache_alloc_bytes"].isna() if "cache_alloc_bytes" in kv.columns else pd.Series(True, kv.index)
        if old.any():
            note += (" Rows recorded before that split (no `cache_alloc_bytes`: "
                     f"{', '.join(sorted(kv.loc[old, 'series'].unique()))}) report the allocation: prompt + new "
                     "tokens rounded up to 16 slots in the benchmark, at most 16 positions more than in use.")
        st.caption(note)

st.subheader(f"Throughput against batch size (prompt {PAPER[0]}, {PAPER[1]} new tokens)")
pts = A.points(view)
batch = pts[(pts["phase"] == "batch") & (pts["prompt_tokens"] == PAPER[0])] if not pts.empty else pts
if batch.empty:
    st.caption("No batch sweep rows at the paper's setting in these runs.")
else:
    b = batch.melt(id_vars=["series", "batch"], value_vars=["e2e_tok_s", "decode_tok_s_batch"],
                   var_name="measure", value_name="tokens/s").dropna()
    b["measure"] = b["measure"].map({"e2e_tok_s": "end to end (prefill + decode)",
                                     "decode_tok_s_batch": "decode only"})
    st.plotly_chart(batch_throughput(b, SERIES_COLORS), width="stretch", theme=None)
maxb = view[view["metric"] == "max_batch"] if "metric" in view.columns else view.iloc[0:0]
if not maxb.empty:
    cols = [c for c in ("series", "value", "oom_at", "stopped_by") if c in maxb.columns]
    t = maxb[cols].rename(columns={"value": "largest batch that ran", "oom_at": "ran out of memory at",
                                   "stopped_by": "sweep stopped by"})
    if "sweep stopped by" in t.columns:
        t["sweep stopped by"] = t["sweep stopped by"].map(lambda v: A.STOPPED_BY.get(v, v))
    st.dataframe(t, hide_index=True, key="perf_maxb")
    # rows from before stopped_by: capped says end of list, else the next batch ran out of memory
    why = [v if isinstance(v, str) else ("end_of_list" if c is not None and c == c and bool(c) else "oom")
           for v, c in zip(maxb.get("stopped_by", pd.Series(None, maxb.index)),
                           maxb.get("capped", pd.Series(None, maxb.index)), strict=True)]
    if any(w != "oom" for w in why):
        st.caption("Where the sweep did not stop at an out-of-memory batch, \"largest batch that ran\" is the "
                   "largest batch measured, not the largest that fits: the paper-setting ratios above compare "
                   "those batches.")

st.subheader("Where prefill time goes")
try:
    prof = store.measurements(kinds="bench_profile", expand_extra=True)
except Exception as e:
    prof = pd.DataFrame()
    st.caption(f"The prefill profiles could not be read: {error_sentence(e)}")
if prof.empty or "category" not in prof.columns:
    st.caption("No prefill profile stored yet. On a GPU: `python -m backend bench-profile --models 130m --batch 256 "
               "--jsonl results/profile_mine.jsonl`, then `python -m backend import-results results/`.")
else:
    last = prof.sort_values("created_at").groupby("device")["run_id"].last()
    for dev, run_id in last.items():
        p = prof[prof["run_id"] == run_id].copy()
        tokens = p["batch"] * p["prompt_tokens"]
        p["us_per_token"] = p["value"] * 1e3 / tokens
        p["label"] = p["model"] + " · B" + p["batch"].astype(int).astype(str) + " L" + p["prompt_tokens"].astype(int).astype(str)
        st.plotly_chart(prefill_breakdown_bars(p), width="stretch", theme=None, key=f"perf_prof_{run_id}")
        walls = p.groupby("label").agg(wall=("prefill_ms", "first"), kernels=("kernel_ms_total", "first"))
        st.caption(f"{dev}, torch.profiler over one prefill on the benchmark's own stepper (bf16): "
                   + "; ".join(f"{lab}: {w.wall:,.0f} ms wall, {w.kernels:,.0f} ms in kernels" for lab, w in walls.iterrows())
                   + ". Categories come from kernel names (`backend/bench/profile.py`).")

st.subheader("Baselines (labelled, never a model's own number)")
base = meas[meas["phase"].isin(["hf-generate", "eager"]) & (meas["status"] == "ok")] if "phase" in meas else meas.iloc[0:0]
if base.empty:
    st.caption("No baseline rows in these runs.")
else:
    own = A.points(meas)
    rows = []
    for _, r in base.iterrows():
        mine = own[(own["run_id"] == r["run_id"]) & (own["model"] == r["model"]) & (own["batch"] == 1)]
        best = mine.loc[(mine["prompt_tokens"] - r["prompt_tokens"]).abs().idxmin()] if not mine.empty else None
        rows.append({"run": r["run"], "model": r["model"], "baseline path": r["path"],
                     "prompt": r["prompt_tokens"], "baseline tok/s": r["decode_tok_s"],
                     "own path": None if best is None else best["path"],
                     "own tok/s (batch 1)": None if best is None else best["decode_tok_s"]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="perf_base")

problems = meas[meas["status"].isin(["oom", "error"])] if "status" in meas else meas.iloc[0:0]
if not problems.empty:
    with st.expander(f"Points that ran out of memory or failed ({len(problems)})"):
        st.dataframe(problems[["run", "model", "phase", "batch", "prompt_tokens", "new_tokens", "status", "error"]],
                     hide_index=True, key="perf_problems")
with st.expander("All rows"):
    st.dataframe(exportable(meas), hide_index=True, key="perf_rows")
    st.download_button("Download CSV", exportable(meas).to_csv(index=False), "bench.csv", "text/csv",
                       key="perf_csv")
