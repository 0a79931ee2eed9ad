"""Few-shot: accuracy against the number of in-context examples k, per model, with 95% bands, the chance and
majority floors, within- and beyond-training panels and each model's difference from the transformer, and each
instance's prompt and answers side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.experiments import stats
from backend.experiments.config import DEFAULT_TASK, PROFILES
from backend.experiments.plans import task_names
from backend.experiments.views import accuracy_table
from pages.components import experiment as kit
from pages.components.charts import accuracy_lines, diff_lines
from pages.components.resources import generator_getter, store_or_stop

KEY = "fewshot"
USER_DATA = "your own JSONL file"

st.title("Few-shot")
st.markdown(
    "Does in-context learning work as well in a state space model as in a transformer? Each query is asked "
    "with k labelled examples before it (the same examples for every model, nested: the k=2 examples are the "
    "first two of the k=4 examples), and the answer is the label the model finds most likely "
    "(log-likelihood over the instance's labels). Toy-world tasks: *arbitrary* (animals vs tools named by two "
    "trained one-token nonce labels, assigned at random per instance: only the examples say which is which), "
    "*new-labels* (the same with words never used as labels in training), *flipped* (sentiment with positive "
    "and negative swapped: the examples must overturn what training taught), and *sentiment* / *workplace* "
    "(mappings fixed in training, so k = 0 already knows them: a ceiling, not in-context learning). Grey lines "
    "are the floors to beat (chance, always the commonest answer); training showed k = 0 to 8.")

store = store_or_stop()
get_generator = generator_getter()


with st.container(border=True):
    st.subheader("Run")
    models, n, seed = kit.common_widgets("fewshot", KEY)
    c1, c2 = st.columns(2)
    tasks = task_names("fewshot")
    default_task = DEFAULT_TASK["fewshot"]
    task = c1.selectbox("Task", [*tasks, USER_DATA], index=tasks.index(default_task) if default_task in tasks else 0,
                        key=f"{KEY}_task", **kit.KEEP)
    ks = c2.multiselect("k (examples in the prompt)", [0, 1, 2, 4, 8, 16, 32],
                        default=PROFILES["quick"]["fewshot"]["sweep"]["k"],
                        key=f"{KEY}_ks", **kit.KEEP)
    data = None
    if task == USER_DATA:
        data = st.text_input("Path of a JSONL file, one {\"text\": ..., \"label\": ...} object per line",
                             key=f"{KEY}_data", **kit.KEEP).strip() or None
    cfg = kit.build_config("fewshot", models, n, seed, {"k": sorted(ks)}, "" if task == USER_DATA else task,
                           data) if (task != USER_DATA or data) else None
    if task == USER_DATA and not data:
        st.caption("Give the path of a JSONL file to run on your own data.")
    job = kit.run_controls(KEY, cfg, get_generator, store)

runs, row, preds = kit.results_header(store, "fewshot", "few-shot", KEY, job, get_generator)
filt = kit.filter_choice(preds, f"{KEY}_filter", default="acc")
table = accuracy_table(preds, ["k"], filt)
limit = stats.trained_limit("fewshot", "k")
st.plotly_chart(accuracy_lines(table, "k", "Accuracy vs number of in-context examples (95% Wilson bands)",
                               x_title="k", baselines=stats.baseline_table(preds, ["k"], filt), trained_max=limit,
                               log_x=True), key=f"{KEY}_chart")
with st.expander("Accuracy table"):
    st.dataframe(table, hide_index=True, key=f"{KEY}_table")
paired = stats.paired_table(preds, ["k"], filt, stats.references(
    list(dict.fromkeys(preds["model"])), stats.run_families(row.get("meta"), row.get("summary"))))
if not paired.empty:
    st.plotly_chart(diff_lines(paired, "k", "Difference from the transformer on the same instances (95% interval; "
                               "filled: holds after McNemar + Holm)", x_title="k", trained_max=limit, log_x=True),
                    key=f"{KEY}_diff")
    st.caption(" ".join(stats.paired_summary(paired, ["k"])))
    with st.expander("Paired differences (McNemar's exact test, Holm-corrected across the table)"):
        st.dataframe(paired, hide_index=True, key=f"{KEY}_paired")

st.subheader("Instances side by side")
params = pd.DataFrame(list(preds["params"]), index=preds.index)
c1, c2 = st.columns([1, 3])
k_values = sorted(params["k"].dropna().unique())
k_pick = c1.selectbox("k", k_values, key=f"{KEY}_browse_k")
ids = list(dict.fromkeys(preds.loc[params["k"] == k_pick, "instance_id"]))
inst_id = c2.selectbox("Instance", ids, key=f"{KEY}_browse_inst")


def show_output(output: str, r) -> None:
    st.code(output or " ", language=None, wrap_lines=True)
    lp = (r["extra"] or {}).get("choice_logprobs") if isinstance(r["extra"], dict) else None
    if lp:
        st.dataframe(pd.DataFrame({"choice": list(lp), "log-likelihood": list(lp.values())}), hide_index=True)


kit.side_by_side(preds, inst_id, show_output, models=row["config"].get("models"))
kit.compare_section(store, runs, KEY)
