"""Kernels: our Triton SSM kernels, measured. Where they compile (AMD and NVIDIA, ahead of time, no GPU
needed), how close they come to the GPU's memory bandwidth, how much faster they are than the PyTorch
reference, Hugging Face's fallback and mamba-ssm, and what that does to Mamba / Mamba-2 prefill and
decode end to end. Everything shown is read from the results store (kinds kernel_aot, kernel_bench,
ssm_e2e); committed results/*.jsonl are imported on first start."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.bench import analysis
from backend.generation.compare import error_sentence
from pages.components import charts
from pages.components.fmt import exportable, fmt_num
from pages.components.resources import ensure_results_imported, get_store, store_path

KINDS = ["kernel_aot", "kernel_bench", "ssm_e2e"]


@st.cache_data(ttl=30, show_spinner=False)
def load(db: str) -> pd.DataFrame:
    return get_store().measurements(kinds=KINDS, expand_extra=True)


def latest_run(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of the most recent run of `kind` (per device for benchmarks)."""
    sub = df[df["kind"] == kind]
    if sub.empty:
        return sub
    last = sub.sort_values("created_at").groupby("device")["run_id"].last()
    return sub[sub["run_id"].isin(last.values)]


def col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


st.title("Kernels")
st.caption("Our Triton kernels for the SSM scans: Mamba-1 selective scan, decode state update (Mamba-1 and "
           "Mamba-2), Mamba-2 chunked SSD scan, causal conv1d. Correctness is checked against PyTorch references "
           "on CPU (Triton interpreter) and on an NVIDIA H100; AMD is checked by compiling for gfx90a / gfx942, "
           "not by running (we have no AMD GPU).")

try:
    ensure_results_imported()
    data = load(store_path())
except Exception as e:
    st.error(f"The results store could not be read: {error_sentence(e)}")
    st.stop()

if data.empty:
    st.info("No kernel results are stored yet. Compile the table here (no GPU needed), or run the benchmarks on a "
            "GPU and import them:")
    st.code("python -m backend kernel-aot --record results/kernels_aot.jsonl\n"
            "python -m backend kernel-bench --out results/kernels_gpu.jsonl      # on a GPU\n"
            "python -m backend ssm-bench --out results/ssm_e2e_gpu.jsonl         # on a GPU\n"
            "python -m backend import-results results/", language="bash")
    st.stop()

# ------------------------------------------------------------------ end to end
e2e = latest_run(data, "ssm_e2e")
st.header("End to end: Mamba and Mamba-2 (130M shapes, bf16, batch 1)")
if e2e.empty:
    st.info("No end-to-end run stored yet (`python -m backend ssm-bench` on a GPU).")
else:
    dev = ", ".join(sorted(e2e["device"].dropna().unique()))
    st.caption(f"Device: {dev}. Path `triton` = our kernels through backend.generation.ssm_fast; `hf-torch` = Hugging Face's "
               "own fallback (no mamba-ssm installed), measured in the same run.")
    pre = e2e[col(e2e, "prefill_ms").notna()].copy()
    if not pre.empty:
        pre["series"] = pre["model"] + " · " + pre["path"]
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.prefill_lines(pre), width="stretch")
        mem = pre[col(pre, "peak_mem_bytes").notna()].copy()
        if not mem.empty:
            mem["peak_mem_gib"] = mem["peak_mem_bytes"] / 2**30
            c2.plotly_chart(charts.prefill_memory_lines(mem), width="stretch")
    dec = e2e[col(e2e, "decode_tok_s").notna()].copy()
    if not dec.empty:
        dec["series"] = dec["model"] + " · " + dec["path"]
        st.plotly_chart(charts.decode_bars(dec), width="stretch")
    show = [c for c in ("model", "path", "prompt_tokens", "new_tokens", "prefill_ms", "peak_mem_bytes",
                        "decode_tok_s", "tpot_ms", "cache_bytes", "error") if c in e2e.columns]
    st.dataframe(exportable(e2e[show].sort_values(["model", "path", "prompt_tokens"])), hide_index=True)

# ------------------------------------------------------------------ roofline
kb = latest_run(data, "kernel_bench")
st.header("Kernels against the memory roofline")
if kb.empty:
    st.info("No kernel benchmark stored yet (`python -m backend kernel-bench` on a GPU).")
else:
    st.caption("One chart per GPU, each against its own measured copy bandwidth. Achieved GB/s counts each "
               "kernel's compulsory traffic (inputs read once, outputs written once). The scan is bound by its "
               "exponentials rather than by memory, so it sits far below the ceiling; `mamba-ssm-cuda` bars are "
               "state-spaces/mamba's CUDA scan forward built on the same machine and timed on the same inputs "
               "(a peer, never our number).")
    for device, k, ceiling, peers in analysis.rooflines(kb):
        for frame in (k, peers):
            frame["label"] = frame["model"] + "<br>" + col(frame, "shape").astype(str)
        st.subheader(f"{device}: copy bandwidth {fmt_num(ceiling, ' GB/s', 0)}")
        st.plotly_chart(charts.roofline_bars(k, ceiling, peers), width="stretch")
        speed_cols = [c for c in k.columns if c.startswith("speedup_vs_") and k[c].notna().any()]
        if speed_cols:
            long = k.melt(id_vars=["label"], value_vars=speed_cols, var_name="baseline", value_name="speedup").dropna()
            long["baseline"] = long["baseline"].str.replace("speedup_vs_", "", regex=False)
            st.plotly_chart(charts.speedup_bars(long), width="stretch")
        show = ["model", "shape", "value", "gbps", "pct_of_copy"] + [c for c in k.columns if c.endswith("_ms")
                                                                      and c != "value"] + speed_cols
        st.dataframe(exportable(k[[c for c in show if c in k.columns]].rename(columns={"value": "ms"})),
                     hide_index=True)
        if not peers.empty:
            st.dataframe(exportable(peers[[c for c in ("path", "model", "shape", "value", "ours_ms", "pct_of_copy")
                                           if c in peers.columns]].rename(columns={"value": "peer ms"})),
                         hide_index=True)
        for note in col(k, "hf_note").dropna().unique():
            st.caption(f"Note: {note}")
    # the newest run that swept launch configs (per device), which need not be the newest run
    sweep = latest_run(data[col(data, "metric") == "sweep_ms"], "kernel_bench")
    if not sweep.empty:
        with st.expander("Launch-config sweep (out-of-place kernels)"):
            st.caption("From " + ", ".join(f"{d} (run {str(r)[:8]}, {str(t)[:16]})" for d, r, t in
                                           sweep.groupby("device").agg(r=("run_id", "first"), t=("created_at", "first"))
                                           .itertuples()))
            st.dataframe(exportable(sweep[[c for c in ("model", "shape", "config", "value", "pct_of_copy")
                                              if c in sweep.columns]].rename(columns={"value": "ms"})),
                         hide_index=True)

# ------------------------------------------------------------------ AOT table
aot = latest_run(data, "kernel_aot")
st.header("Ahead-of-time compilation: AMD and NVIDIA")
if aot.empty:
    st.info("No compile table stored yet: `python -m backend kernel-aot --record results/kernels_aot.jsonl`.")
else:
    st.caption("Every kernel at the launch configuration the dispatcher uses, compiled with Triton on a CPU "
               "machine for gfx90a (MI210/MI250), gfx942 (MI300X), sm_80 (A100) and sm_90 (H100). `spills` = "
               "spills to memory (AMD VGPR spills + scratch; NVIDIA spill stores + loads); AMD SGPR spills go to "
               "vector registers and are shown separately. CI fails on a compile error or a memory spill.")
    targets = sorted(aot["device"].dropna().unique())
    pick = st.multiselect("Targets", targets, default=targets, key="kernels_aot_targets")
    view = aot[aot["device"].isin(pick)]
    show = [c for c in ("model", "variant", "device", "num_warps", "config", "ok", "vgpr", "sgpr", "registers",
                        "spills", "sgpr_spill", "lds_bytes", "shared_bytes", "occupancy", "loop_instrs", "value", "error")
            if c in view.columns]
    st.dataframe(exportable(view[show].rename(columns={"model": "op", "device": "target",
                                                          "value": "compile_s"})), hide_index=True)
    bad = view[(col(view, "ok") == False) | (col(view, "spills").fillna(0) > 0)]  # noqa: E712
    if bad.empty:
        st.success(f"{len(view)} compiles, no errors, no spills to memory.")
    else:
        st.warning(f"{len(bad)} of {len(view)} compiles failed or spill to memory.")
