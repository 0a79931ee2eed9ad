"""RAG evaluation: how much retrieved context each model can use (the RAG experiment: answer accuracy
against k with its floor and within- / beyond-training panels, by the gold passage's position, each model's
difference from the transformer, closed- vs open-book, retrieval quality and faithfulness of stored runs; tables
from backend.experiments.rag_views and stats), and the retriever alone on the toy world (recall@k, MRR)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.experiments import rag_views as rv
from backend.experiments import stats
from backend.experiments.config import DEFAULT_TASK, PROFILES
from backend.generation.compare import device_setting, error_sentence
from pages.components import experiment as kit
from pages.components.charts import (
    accuracy_lines,
    book_bars,
    diff_lines,
    metric_lines,
    retrieval_lines,
    retrieval_measurement,
)
from pages.components.resources import generator_getter, get_embedder, get_store, store_or_stop

EVAL = "rag_exp"


def experiment_results(store, job, get_generator) -> None:
    """The picked stored run (the one just made first): EM and F1 against k, closed- vs open-book, and, for
    a completed run, retrieval quality and faithfulness."""
    runs = kit.stored_runs(store, "rag")
    if runs.empty:
        st.info("No RAG experiment run is stored yet. Press Run above, or run `python -m backend experiment rag` "
                "in a terminal; runs from either appear here.")
        return
    row = kit.pick_run(runs, f"{EVAL}_pick", prefer=job.run_id if job else None)
    kit.resume_button(row, EVAL, get_generator, store)
    preds = store.predictions(run_id=row["run_id"])
    answers = rv.answer_table(preds)
    if answers.empty:
        st.info("This run has no finished instances yet.")
        return
    stored = rv.stored_table(store.measurements(run_ids=[row["run_id"]]))
    limit = stats.trained_limit("rag", "k")
    em = answers[answers["metric"] == "exact match"]
    st.plotly_chart(accuracy_lines(em, "k", "Exact match vs k (95% bands; training put one passage before each "
                                   "question)", x_title="k (passages; 0 = closed-book)", trained_max=limit,
                                   baselines=stats.baseline_table(preds, ["k"], "strict")), key=f"{EVAL}_em_chart")
    positions = rv.position_table(preds)
    if positions.empty:
        st.caption("This run predates gold-position sweeps (rag-open v1: the retrieved passages in rank order, the "
                   "gold one first in most prompts), so accuracy by position cannot be drawn.")
    else:
        st.plotly_chart(accuracy_lines(positions[positions["k"] > 1], "gold_pos", "Exact match by the gold "
                                       "passage's position (1 = first; k = last, right before the question; dashed "
                                       "by k)", dash_by="k", x_title="gold passage position"),
                        key=f"{EVAL}_pos_chart")
    paired = stats.paired_table(preds, ["k"], "strict", stats.references(
        list(dict.fromkeys(preds["model"])), stats.run_families(row.get("meta"), row.get("summary"))))
    if not paired.empty:
        st.plotly_chart(diff_lines(paired, "k", "Exact match: difference from the transformer on the same questions "
                                   "(95% interval; filled: holds after McNemar + Holm)", x_title="k",
                                   trained_max=limit), key=f"{EVAL}_diff_chart")
        st.caption(" ".join(stats.paired_summary(paired, ["k"])))
        with st.expander("Paired differences (McNemar's exact test, Holm-corrected across the table)"):
            st.dataframe(paired, hide_index=True, key=f"{EVAL}_paired")
    st.plotly_chart(metric_lines(answers, "token F1", "Token F1 vs k (95% bands)"), key=f"{EVAL}_f1_chart")
    book = rv.book_table(answers)
    st.plotly_chart(book_bars(book), key=f"{EVAL}_book_chart")
    with st.expander("Closed-book vs open-book table"):
        st.dataframe(book, hide_index=True, key=f"{EVAL}_book_table")
    if stored.empty:
        st.caption("Retrieval quality and faithfulness are stored when a run completes; resume this run to get them.")
        return
    r1, r2 = st.columns(2)
    r1.plotly_chart(retrieval_lines(stored), key=f"{EVAL}_retrieval_chart")
    r2.plotly_chart(metric_lines(stored, "faithfulness", "Faithfulness vs k (answer words in the passages)"),
                    key=f"{EVAL}_faith_chart")
    with st.expander("Stored measurements"):
        st.dataframe(stored, hide_index=True, key=f"{EVAL}_stored_table")


def retrieval_quality() -> None:
    """Recall@k and MRR of the retriever alone (no language model), saved as a run of kind rag-retrieval."""
    st.subheader("Retrieval quality on the toy world")
    st.caption("Recall@k and MRR of the retriever alone on toy-world documents whose questions only they answer "
               "(no language model). Saved as a run of kind rag-retrieval.")
    e1, e2 = st.columns([1, 3])
    n_entities = e1.number_input("Entities", 10, 1000, 100, step=10, key="rag_eval_n")
    if e1.button("Measure recall@k", key="rag_eval"):
        from backend.experiments.rag import measure_retrieval

        try:
            with st.spinner("Indexing the toy-world documents and retrieving for every question ..."):
                rows, run_id = measure_retrieval(int(n_entities), embedder=get_embedder(device_setting()),
                                                 store=get_store())
            st.session_state["rag_eval_rows"] = (rows, run_id)
        except Exception as e:
            st.error(f"The measurement failed: {error_sentence(e)}")
    if found := st.session_state.get("rag_eval_rows"):
        rows, run_id = found
        df = pd.DataFrame([{"k": r["extra"]["params"]["k"], "metric": r["metric"], "value": r["value"],
                            "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"), "n": r["n"]} for r in rows])
        e2.plotly_chart(retrieval_measurement(df), key="rag_eval_chart")
        e2.text(f"n = {int(df['n'].iloc[0])} questions; saved as run {run_id}")


# ------------------------------------------------------------------------------------------ page
st.title("RAG evaluation")
st.subheader("How much retrieved context each model can use")
st.caption("Toy-world documents whose facts the models never saw are indexed in a throw-away collection; each "
           "question is asked with k passages (k = 0: closed-book): its gold passage and the k - 1 others the "
           "retriever ranks highest, the gold one at a position drawn uniformly over the k, so reading is measured "
           "apart from retrieval (recall@k below) and from where the answer sits. Training always put one article "
           "right before its question: k >= 2 is beyond training. Answers are scored by exact match and token F1; "
           "faithfulness is the share of answer words found in the passages (no LLM judge). Every point shows n and "
           "a 95% interval. Saved as a run of kind experiment-rag.")
eval_store = store_or_stop()
eval_generator = generator_getter()

with st.container(border=True):
    models, n, seed = kit.common_widgets("rag", EVAL)
    ks = st.multiselect("k (retrieved passages in the prompt; 0 = closed-book)", [0, 1, 2, 3, 4, 5, 8, 10],
                        default=PROFILES["quick"]["rag"]["sweep"]["k"], key=f"{EVAL}_ks", **kit.KEEP)
    cfg = kit.build_config("rag", models, n, seed, {"k": sorted(ks)}, DEFAULT_TASK["rag"])
    st.caption("On a machine without faiss: `--save-plan FILE` here, then `--plan FILE` there runs the models on "
               "exactly these retrieved contexts.")
    eval_job = kit.run_controls(EVAL, cfg, eval_generator, eval_store)

experiment_results(eval_store, eval_job, eval_generator)

st.divider()
retrieval_quality()
