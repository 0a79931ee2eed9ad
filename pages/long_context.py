"""Long context: how well each model uses what its context holds. Pass key (length x depth heatmaps with n per
cell, accuracy by length and by the needle's distance to the question, distractor needles), associative recall
and copying; every chart with its floors, within- and beyond-training panels and each model's difference from the
transformer; beside it prefill time, decode time per token, peak memory and cache bytes against length."""

from __future__ import annotations

import streamlit as st

from backend.experiments import stats
from backend.experiments.config import TASK_PROFILES, profile_of
from backend.experiments.views import accuracy_table, efficiency_table, heatmap_grid
from pages.components import experiment as kit
from pages.components.charts import (
    accuracy_lines,
    diff_lines,
    efficiency_figure,
    heatmap_figure,
    length_lines,
)
from pages.components.resources import generator_getter, store_or_stop

KEY = "longctx"
TASKS = {"passkey": "pass key", "recall": "associative recall", "copy": "copying"}

st.title("Long context")
st.markdown(
    "Can a fixed-size state carry what the context holds? **Pass key**: a five-digit key is planted at a chosen "
    "depth (0 = start, 1 = end) of a document of toy-world articles and the model is asked for it; with *keys* > 1 "
    "the document also holds distractor needles of the same shape (\"The door code is N.\"), so copying any "
    "five-digit number is not enough. Training showed pass-key documents of 150 to 900 tokens, and the models "
    "1,024-token contexts, so longer documents (marked †) and longer distances test extrapolation. "
    "**Associative recall**: \" key: value\" lines, then a question for one key (training: 2 to 24 pairs). "
    "**Copying**: \"Repeat after me: ...\" (training: 3 to 30 words). Grey lines are the floors to beat (a random "
    "listed value, a random needle, always the commonest answer). Beside the heatmaps: what each length costs. A "
    "transformer's KV cache grows with the context; an SSM's conv + SSM state stays the same size.")

store = store_or_stop()
get_generator = generator_getter()


with st.container(border=True):
    st.subheader("Run")
    models, n, seed = kit.common_widgets("long-context", KEY)
    task = st.radio("Task", list(TASKS), format_func=TASKS.get, horizontal=True, key=f"{KEY}_task", **kit.KEEP)
    sweep_default = profile_of("long-context", task)["sweep"]
    data = None
    if task == "passkey":
        c1, c2, c3 = st.columns(3)
        lengths = c1.multiselect("Context lengths (tokens)", [128, 256, 512, 1024, 1536, 2048, 4096, 8192, 16384],
                                 default=sweep_default["length"], key=f"{KEY}_lengths", **kit.KEEP)
        depths = c2.multiselect("Depths", [0.0, 0.25, 0.5, 0.75, 1.0], default=sweep_default["depth"],
                                key=f"{KEY}_depths", **kit.KEEP)
        keys = c3.multiselect("Needles (1 = the pass key alone)", [1, 2, 3, 4, 8], default=sweep_default["keys"],
                              key=f"{KEY}_keys", **kit.KEEP)
        sweep = {"length": sorted(lengths), "depth": sorted(depths), "keys": sorted(keys)}
        data = st.text_input("Optional: a JSONL file of your own ({\"context\", \"question\", \"answer\"} per line)",
                             key=f"{KEY}_data", **kit.KEEP).strip() or None
    elif task == "recall":
        pairs = st.multiselect("Key-value pairs", [2, 4, 8, 16, 24, 32, 48], key=f"{KEY}_pairs", **kit.KEEP,
                               default=TASK_PROFILES["quick"][("long-context", "recall")]["sweep"]["pairs"])
        sweep = {"pairs": sorted(pairs)}
    else:
        words = st.multiselect("Words to repeat", [5, 10, 20, 30, 45, 60, 100], key=f"{KEY}_words", **kit.KEEP,
                               default=TASK_PROFILES["quick"][("long-context", "copy")]["sweep"]["words"])
        sweep = {"words": sorted(words)}
    cfg = kit.build_config("long-context", models, n, seed, sweep, "" if data else task, data)
    job = kit.run_controls(KEY, cfg, get_generator, store)

runs, row, preds = kit.results_header(store, "long-context", "long-context", KEY, job, get_generator)
filt = kit.filter_choice(preds, f"{KEY}_filter", default="strict")
train_ctx = kit.train_contexts(row)
run_models = list(dict.fromkeys(preds["model"]))
reference = stats.references(run_models, stats.run_families(row.get("meta"), row.get("summary")))
run_task = (row["config"] or {}).get("task") or "passkey"
DIFF_TITLE = "Difference from the transformer on the same items (95% interval; filled: holds after McNemar + Holm)"


def paired_section(by: list[str], x: str, x_title: str, limit, dash_by: str | None = None, log_x: bool = False):
    paired = stats.paired_table(preds, by, filt, reference)
    if paired.empty:
        return
    st.plotly_chart(diff_lines(paired, x, DIFF_TITLE, dash_by=dash_by, x_title=x_title, trained_max=limit,
                               log_x=log_x), key=f"{KEY}_diff_{x}")
    st.caption(" ".join(stats.paired_summary(paired, by)))
    with st.expander(f"Paired differences by {x_title} (McNemar's exact test, Holm-corrected across the table)"):
        st.dataframe(paired, hide_index=True, key=f"{KEY}_paired_{x}")


def sweep_section(x: str, x_title: str, listed: str | None) -> None:
    """Recall / copy: accuracy against the task's one sweep key with its floors and the paired differences."""
    table = accuracy_table(preds, [x], filt)
    limit = stats.trained_limit("long-context", x)
    st.plotly_chart(accuracy_lines(table, x, f"{TASKS[run_task].capitalize()}: accuracy by {x_title} (95% bands)",
                                   x_title=x_title, baselines=stats.baseline_table(preds, [x], filt),
                                   trained_max=limit, log_x=True), key=f"{KEY}_{x}_chart")
    with st.expander("Accuracy table"):
        st.dataframe(table, hide_index=True, key=f"{KEY}_table")
    if listed:
        wrong = stats.listed_table(preds, [x], listed)
        if not wrong.empty:
            st.caption("Share of answers that are another listed value (a value copied without matching its key):")
            st.dataframe(wrong, hide_index=True, key=f"{KEY}_listed")
    paired_section([x], x, x_title, limit, log_x=True)


if run_task == "recall":
    sweep_section("pairs", "key-value pairs", "listed")
elif run_task == "copy":
    sweep_section("words", "words", None)
else:
    table = accuracy_table(preds, ["length", "depth"], filt)
    table = table.dropna(subset=["length", "depth"]) if not table.empty else table
    if table.empty:
        st.info("This run has no length x depth grid (a data file without lengths); see the table below.")
    else:
        has_keys = any("keys" in (p or {}) for p in preds["params"])
        key_values = sorted({int((p or {}).get("keys", 1)) for p in preds["params"]}) if has_keys else [1]
        key_pick = st.radio("Needles in the heatmaps", key_values, horizontal=True, key=f"{KEY}_key_pick") \
            if len(key_values) > 1 else key_values[0]
        sub = preds[[int((p or {}).get("keys", 1)) == key_pick for p in preds["params"]]]
        cells = accuracy_table(sub, ["length", "depth"], filt).dropna(subset=["length", "depth"])
        all_lengths, all_depths = sorted(set(cells["length"])), sorted(set(cells["depth"]))
        # cells a model could not run (e.g. beyond its position limit) stay blank instead of disappearing
        grids = {m: heatmap_grid(cells, m).reindex(index=all_depths, columns=all_lengths) for m in run_models}
        grids = {m: g for m, g in grids.items() if g.notna().any().any()}
        for col, (m, grid) in zip(st.columns(max(1, len(grids))), grids.items(), strict=False):
            with col:
                st.plotly_chart(heatmap_figure(grid, f"{m}: pass key, {key_pick} needle(s)", train_ctx.get(m),
                                               counts=heatmap_grid(cells, m, "n")), key=f"{KEY}_hm_{m}")
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
        by = ["length", "keys"] if has_keys else ["length"]
        by_length = accuracy_table(preds, by, filt).dropna(subset=["length"])
        if not by_length.empty:
            ctxs = sorted({c for c in train_ctx.values() if c})
            fig = length_lines(by_length, ctxs) if not has_keys else accuracy_lines(
                by_length, "length", "Accuracy by context length over all depths (dashed: more needles)",
                dash_by="keys", x_title="context length (tokens)", trained_max=stats.trained_limit(
                    "long-context", "length", ctxs[0] if ctxs else None),
                baselines=stats.baseline_table(preds[[int((q or {}).get("keys", 1)) == max(key_values)
                                                      for q in preds["params"]]], ["length"], filt))
            st.plotly_chart(fig, key=f"{KEY}_by_length")
            if ctxs:
                st.caption(f"The models' training length: {', '.join(map(str, ctxs))} tokens.")
        by_distance = stats.distance_table(preds, filt)
        if not by_distance.empty:
            st.plotly_chart(accuracy_lines(
                by_distance, "distance", "Accuracy by the needle's distance to the question (tokens; median of each "
                "bucket; dashed: more needles)", dash_by="keys" if "keys" in by_distance else None,
                x_title="distance (tokens)", trained_max=stats.trained_limit("long-context", "distance"), log_x=True),
                key=f"{KEY}_by_distance")
        if has_keys and max(key_values) > 1:
            wrong = stats.listed_table(preds, ["length", "keys"], "distractors")
            if not wrong.empty:
                st.caption("Share of answers that are a distractor's number (a five-digit number copied without "
                           "matching \"pass key\"):")
                st.dataframe(wrong[wrong["keys"] > 1], hide_index=True, key=f"{KEY}_listed")
        paired_section(by, "length", "context length (tokens)", stats.trained_limit(
            "long-context", "length", min([c for c in train_ctx.values() if c] or [1024])),
            dash_by="keys" if has_keys else None)

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
    with st.expander("Accuracy table"):
        st.dataframe(table, hide_index=True, key=f"{KEY}_table")

errors = preds[preds["score"].isna()]
if not errors.empty:
    st.warning(f"{len(errors)} instance(s) were not scored, e.g. beyond a model's position limit: "
               f"{(errors.iloc[0]['extra'] or {}).get('error', '')}")

st.subheader("Instances side by side")
ids = list(dict.fromkeys(preds["instance_id"]))
inst_id = st.selectbox("Instance", ids, key=f"{KEY}_browse_inst")
kit.side_by_side(preds, inst_id, lambda out, r: st.code(out or " ", language=None, wrap_lines=True),
                 models=row["config"].get("models"))
kit.compare_section(store, runs, KEY)
