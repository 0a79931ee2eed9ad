"""Long context: passkey retrieval over context length x depth, one heatmap per model and a difference
heatmap; beside it prefill time, decode time per token, peak memory and cache bytes against length."""

from __future__ import annotations

import streamlit as st

from backend.experiments.views import accuracy_table, efficiency_table, heatmap_grid
from pages.components import experiment as kit
from pages.components.charts import efficiency_figure, heatmap_figure, length_lines
from pages.components.resources import generator_getter, store_or_stop

KEY = "longctx"

st.title("Long context")
st.markdown(
    "Can a fixed-size state carry one fact across a long document? A five-digit pass key is planted at a "
    "chosen depth (0 = start, 1 = end) of a document of toy-world articles, and the model is asked for it. "
    "The bundled models were trained on 1,024-token contexts, so longer documents (marked †) test length "
    "extrapolation. Beside the heatmaps: what each length costs. A transformer's KV cache grows with the "
    "context; an SSM's conv + SSM state stays the same size.")

store = store_or_stop()
get_generator = generator_getter()


with st.container(border=True):
    st.subheader("Run")
    models, n, seed = kit.common_widgets("long-context", KEY)
    c1, c2 = st.columns(2)
    lengths = c1.multiselect("Context lengths (tokens)", [128, 256, 512, 1024, 2048, 4096, 8192, 16384],
                             default=[256, 512, 1024, 2048], key=f"{KEY}_lengths", **kit.KEEP)
    depths = c2.multiselect("Depths", [0.0, 0.25, 0.5, 0.75, 1.0], default=[0.0, 0.5, 1.0], key=f"{KEY}_depths",
                            **kit.KEEP)
    data = st.text_input("Optional: a JSONL file of your own ({\"context\", \"question\", \"answer\"} per line)",
                         key=f"{KEY}_data", **kit.KEEP).strip() or None
    cfg = kit.build_config("long-context", models, n, seed, {"length": sorted(lengths), "depth": sorted(depths)},
                           "" if data else "passkey", data)
    job = kit.run_controls(KEY, cfg, get_generator, store)

runs, row, preds = kit.results_header(store, "long-context", "long-context", KEY, job, get_generator)
filt = kit.filter_choice(preds, f"{KEY}_filter", default="strict")
train_ctx = kit.train_contexts(row)
table = accuracy_table(preds, ["length", "depth"], filt)
table = table.dropna(subset=["length", "depth"]) if not table.empty else table
run_models = list(dict.fromkeys(preds["model"]))

if table.empty:
    st.info("This run has no length x depth grid (a data file without lengths); see the table below.")
else:
    all_lengths, all_depths = sorted(set(table["length"])), sorted(set(table["depth"]))
    # cells a model could not run (e.g. beyond its position limit) stay blank instead of disappearing
    grids = {m: heatmap_grid(table, m).reindex(index=all_depths, columns=all_lengths) for m in run_models}
    grids = {m: g for m, g in grids.items() if g.notna().any().any()}
    for col, (m, grid) in zip(st.columns(max(1, len(grids))), grids.items(), strict=False):
        with col:
            st.plotly_chart(heatmap_figure(grid, f"{m}: passkey accuracy", train_ctx.get(m)), key=f"{KEY}_hm_{m}")
    if len(grids) >= 2:
        names = list(grids)
        c1, c2, c3 = st.columns([1, 1, 2])
        a = c1.selectbox("Difference: model A", names, index=0, key=f"{KEY}_diff_a")
        b = c2.selectbox("minus model B", names, index=len(names) - 1, key=f"{KEY}_diff_b")
        if a != b:
            ctx = min([c for c in (train_ctx.get(a), train_ctx.get(b)) if c] or [0]) or None
            with c3:
                st.plotly_chart(heatmap_figure(grids[a] - grids[b], f"{a} minus {b}", ctx, diff=True),
                                key=f"{KEY}_hm_diff")

    by_length = accuracy_table(preds, ["length"], filt).dropna(subset=["length"])
    if not by_length.empty:
        ctxs = sorted({c for c in train_ctx.values() if c})
        st.plotly_chart(length_lines(by_length, ctxs), key=f"{KEY}_by_length")
        if ctxs:
            st.caption(f"Dashed line: the models' training length ({', '.join(map(str, ctxs))} tokens).")

st.subheader("What each length costs")
meas = store.measurements(run_ids=[row["run_id"]])
fig = efficiency_figure(efficiency_table(meas))
if fig is None:
    st.caption("No timing rows in this run.")
else:
    st.plotly_chart(fig, key=f"{KEY}_eff")
    inst = meas[meas["metric"].isna() & (meas["cache_kind"] == "kv")]
    old = inst["path"].fillna("").str.contains("static")
    if "cache_alloc_bytes" in inst.columns:
        old &= inst["cache_alloc_bytes"].isna()
    static = sorted(set(inst.loc[old, "model"]))
    if static:
        st.caption(f"{', '.join(static)}: rows recorded before the static-cache accounting was fixed count the "
                   "whole preallocated KV cache of the GPU path (sized for the longest context served so far), "
                   "not the positions in use; newer rows count the positions written and record the "
                   "allocation separately (cache_alloc_bytes).")
    dev = ", ".join(sorted(set(meas["device"].dropna().astype(str))))
    st.caption(f"Measured on {dev or 'an unknown device'}; medians over the instances of each length. Peak "
               "memory is GPU allocated memory on a GPU and the process's RSS on a CPU; timings from a CPU are "
               "CPU timings (absolute speed comes from GPU runs).")
errors = preds[preds["score"].isna()]
if not errors.empty:
    st.warning(f"{len(errors)} instance(s) were not scored, e.g. beyond a model's position limit: "
               f"{(errors.iloc[0]['extra'] or {}).get('error', '')}")
with st.expander("Accuracy table"):
    st.dataframe(table, hide_index=True, key=f"{KEY}_table")

st.subheader("Instances side by side")
ids = list(dict.fromkeys(preds["instance_id"]))
inst_id = st.selectbox("Instance", ids, key=f"{KEY}_browse_inst")
kit.side_by_side(preds, inst_id, lambda out, r: st.code(out or " ", language=None, wrap_lines=True),
                 models=row["config"].get("models"))
kit.compare_section(store, runs, KEY)
