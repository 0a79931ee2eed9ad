"""Chain-of-thought: direct answers vs step-by-step reasoning, by number of reasoning steps, per model, with the
majority floor, within- and beyond-training panels (training showed 1 to 5 steps) and each model's difference
from the transformer; the generated chains with the extracted answer highlighted."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.experiments import stats
from backend.experiments.config import PROFILES
from backend.experiments.views import accuracy_table, highlighted_markdown
from pages.components import experiment as kit
from pages.components.charts import accuracy_lines, diff_lines
from pages.components.resources import generator_getter, store_or_stop

KEY = "cot"

st.title("Chain of thought")
st.markdown(
    "Does writing out intermediate steps help an SSM as much as a transformer? Each arithmetic word problem "
    "of 1 to N steps is asked twice: **direct** (\"... The answer is\" and the model completes the number) and "
    "**step by step** (\"Let's think step by step.\" and the model writes a chain ending \"The answer is N.\"). "
    "Answers are read as lm-evaluation-harness's gsm8k_cot does: *strict* takes the number after \"The answer "
    "is\" (for direct answers, the number the output starts with), *flexible* the last number of a chain (the "
    "first number of a direct answer), *within1* a direct answer at most 1 from the right one (a running total "
    "that is nearly right, not the answer). Training showed 1 to 5 steps in exactly these templates, so 1.00 there "
    "is a ceiling; 6 steps and more are beyond training. The grey line is the majority floor: always answering "
    "the commonest answer of that many steps.")

store = store_or_stop()
get_generator = generator_getter()


with st.container(border=True):
    st.subheader("Run")
    models, n, seed = kit.common_widgets("cot", KEY)
    c1, c2 = st.columns(2)
    steps = c1.multiselect("Reasoning steps", list(range(1, 11)), default=PROFILES["quick"]["cot"]["sweep"]["steps"],
                           key=f"{KEY}_steps", **kit.KEEP)
    modes = c2.multiselect("Modes", ["direct", "cot"], default=["direct", "cot"], key=f"{KEY}_modes",
                           **kit.KEEP)
    data = st.text_input("Optional: a GSM8K-style JSONL file ({\"question\": ..., \"answer\": \"... #### N\"}) "
                         "instead of the toy-world problems", key=f"{KEY}_data", **kit.KEEP).strip() or None
    cfg = kit.build_config("cot", models, n, seed, {"steps": sorted(steps), "mode": modes},
                           "" if data else "arithmetic", data)
    job = kit.run_controls(KEY, cfg, get_generator, store)

runs, row, preds = kit.results_header(store, "cot", "chain-of-thought", KEY, job, get_generator)
filt = kit.filter_choice(preds, f"{KEY}_filter", default="strict")
table = accuracy_table(preds, ["steps", "mode"], filt)
limit = stats.trained_limit("cot", "steps")
floors = stats.baseline_table(preds[[(p or {}).get("mode") == "direct" for p in preds["params"]]], ["steps"], filt)
st.plotly_chart(accuracy_lines(table, "steps", "Direct (solid) vs step-by-step (dashed) accuracy by number of steps",
                               dash_by="mode", x_title="reasoning steps", baselines=floors, trained_max=limit),
                key=f"{KEY}_chart")
with st.expander("Accuracy table"):
    st.dataframe(table, hide_index=True, key=f"{KEY}_table")
paired = stats.paired_table(preds, ["steps", "mode"], filt, stats.references(
    list(dict.fromkeys(preds["model"])), stats.run_families(row.get("meta"), row.get("summary"))))
if not paired.empty:
    st.plotly_chart(diff_lines(paired, "steps", "Difference from the transformer on the same problems (95% interval; "
                               "filled: holds after McNemar + Holm)", dash_by="mode", x_title="reasoning steps",
                               trained_max=limit), key=f"{KEY}_diff")
    st.caption(" ".join(stats.paired_summary(paired, ["steps", "mode"])))
    with st.expander("Paired differences (McNemar's exact test, Holm-corrected across the table)"):
        st.dataframe(paired, hide_index=True, key=f"{KEY}_paired")

st.subheader("Generated chains")
params = pd.DataFrame(list(preds["params"]), index=preds.index)
c1, c2, c3 = st.columns([1, 1, 3])
step_pick = c1.selectbox("Steps", sorted(params["steps"].dropna().unique()), key=f"{KEY}_browse_steps")
mode_pick = c2.selectbox("Mode", sorted(params["mode"].dropna().unique()), key=f"{KEY}_browse_mode")
mask = (params["steps"] == step_pick) & (params["mode"] == mode_pick)
ids = list(dict.fromkeys(preds.loc[mask, "instance_id"]))
inst_id = c3.selectbox("Problem", ids, key=f"{KEY}_browse_inst") if ids else None


def show_chain(output: str, r) -> None:
    extra = r["extra"] if isinstance(r["extra"], dict) else {}
    rule = (extra.get("rules") or {}).get(filt, "last_number")
    cut = extra.get("scored_chars", len(output))
    # the output up to its stop string is what was scored: highlight the answer the rule extracted there
    with st.container(border=True):
        st.markdown(highlighted_markdown(output[:cut], rule) or "(empty output)")
    if output[cut:].strip():
        st.caption("After the stop string (not scored):")
        st.code(output[cut:], language=None, wrap_lines=True)


if inst_id:
    kit.side_by_side(preds, inst_id, show_chain, models=row["config"].get("models"))
kit.compare_section(store, runs, KEY)
