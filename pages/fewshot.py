"""Few-shot: accuracy against the number of in-context examples k, per model, with 95% bands, and
each instance's prompt and answers side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.experiments.config import DEFAULT_TASK
from backend.experiments.plans import task_names
from backend.experiments.views import accuracy_table
from pages.components import experiment as kit
from pages.components.charts import accuracy_lines
from pages.components.resources import generator_getter, store_or_stop

KEY = "fewshot"
USER_DATA = "your own JSONL file"

st.title("Few-shot")
st.markdown(
    "Does in-context learning work as well in a state space model as in a transformer? Each query is asked "
    "with k labelled examples before it (the same examples for every model, nested: the k=2 examples are the "
    "first two of the k=4 examples), and the answer is the label the model finds most likely "
    "(log-likelihood over the label words). Toy-world tasks: *arbitrary* (animals vs tools named by nonce "
    "labels whose meaning only the examples define: pure in-context learning), *sentiment* (label words the "
    "models know) and *workplace* (an occupation-to-workplace mapping over 16 labels).")

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
    ks = c2.multiselect("k (examples in the prompt)", [0, 1, 2, 4, 8, 16, 32], default=[0, 1, 2, 4, 8],
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
st.plotly_chart(accuracy_lines(table, "k", "Accuracy vs number of in-context examples (95% Wilson bands)",
                               x_title="k (examples in the prompt)"), key=f"{KEY}_chart")
with st.expander("Accuracy table"):
    st.dataframe(table, hide_index=True, key=f"{KEY}_table")

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
