"""RAG: upload documents into a collection, ask a question, and see every chosen model answer with the
retrieved passages side by side (optionally beside its closed-book answer); evaluate retrieval alone, and
run the RAG experiment (answer accuracy against k, closed- vs open-book; plots from
backend.experiments.rag_views)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend import registry
from pages import expkit as kit
from backend.experiments import rag_views as rv
from backend.experiments.config import DEFAULT_TASK, PROFILES
from pages import ui

STATE = "rag_state"  # the current question: hits, columns and the streaming job
ERROR = "rag_error"
REPORT = "rag_report"
UPLOAD_TYPES = ["pdf", "docx", "md", "markdown", "txt"]


@st.cache_resource(show_spinner="Loading the embedding model (all-MiniLM-L6-v2) ...")
def _embedder(device: str):
    from retrieval.embed import get_embedder

    return get_embedder(None if device == "auto" else device)


def retriever():
    """A Retriever on the app's store; the embedder loads (once per process) only when a search or an
    upload needs it."""
    from retrieval import Retriever

    return Retriever(ui.get_store(), embedder_loader=lambda: _embedder(ui.device_setting()))


def create_collection() -> None:
    name = (st.session_state.get("rag_new_collection") or "").strip()
    try:
        retriever().create_collection(name)
        st.session_state["rag_collection"] = name
        st.session_state["rag_new_collection"] = ""
    except Exception as e:
        st.session_state[ERROR] = ui.error_sentence(e)


def stop_job() -> None:
    state = st.session_state.get(STATE)
    if state and state.get("job") is not None:
        state["job"].stop.set()


def start_question() -> None:
    """Ask's callback: retrieve, build each model's prompt, start the side-by-side job."""
    from backend.rag import plan_columns

    collection = st.session_state.get("rag_collection")
    question = (st.session_state.get("rag_question") or "").strip()
    models = st.session_state.get("rag_models") or []
    k = int(st.session_state.get("rag_k", 3))
    closed = bool(st.session_state.get("rag_closed_book", False))
    settings = ui.settings_from_state("rag")
    if not collection:
        st.session_state[ERROR] = "Pick or create a collection first, then add documents to it."
        return
    if not question:
        st.session_state[ERROR] = "The question is empty. Type a question and press Ask again."
        return
    if not models:
        st.session_state[ERROR] = "No model is selected. Pick at least one model."
        return
    try:
        settings.validate()
        hits = retriever().search(collection, question, k)
        if not hits:
            st.session_state[ERROR] = f"Collection {collection} has no documents yet. Upload some first."
            return
        manager = ui.get_manager()
        columns = plan_columns(question, hits, models, manager, settings, closed, ui.device_setting())
    except Exception as e:
        st.session_state[ERROR] = ui.error_sentence(e)
        return
    slots = [ui.Slot(c.label, c.model, c.prompt) for c in columns]
    saver = _saver(ui.get_store(), question, collection, k, hits, columns, settings)
    st.session_state[STATE] = {
        "question": question, "collection": collection, "k": k, "hits": hits, "columns": columns,
        "job": ui.CompareJob(slots, settings, manager, on_finish=saver).start(),
    }


def _saver(store, question, collection, k, hits, columns, settings):
    """CompareJob's on_finish: runs in the last worker thread once every column ended, so the answers are
    saved (run kind "rag") even if the browser tab was closed meanwhile."""

    def on_finish(results):
        from backend.rag import record_rag

        by_key = {(r.model, r.prompt): r for r in results}
        for c in columns:
            c.result = by_key.get((c.model, c.prompt))
        run_id = record_rag(store, question, collection, k, hits, columns, settings, source="ui")
        return [("info", f"Saved as run {run_id} (kind rag; see the History page).")]

    return on_finish


def delete_document(collection: str, doc_id: str) -> None:
    try:
        retriever().delete_document(collection, doc_id)
    except Exception as e:
        st.session_state[ERROR] = ui.error_sentence(e)


def rebuild(collection: str) -> None:
    try:
        retriever().rebuild(collection)
    except Exception as e:
        st.session_state[ERROR] = ui.error_sentence(e)


def upload(collection: str, files) -> None:
    bar = st.progress(0.0, text="Reading files ...")
    labels = {"parse": "Reading files", "embed": "Embedding chunks", "index": "Saving the index"}
    weights = {"parse": (0.0, 0.3), "embed": (0.3, 0.95), "index": (0.95, 1.0)}

    def progress(stage: str, done: int, total: int) -> None:
        lo, hi = weights[stage]
        bar.progress(min(1.0, lo + (hi - lo) * (done / total if total else 1.0)),
                     text=f"{labels[stage]} ... {done}/{total}")

    try:
        report = retriever().add_files(collection, [(f.name, f.getvalue()) for f in files], progress=progress)
    except Exception as e:  # store locked, disk full, ...: a sentence, never a traceback
        st.session_state.pop(REPORT, None)
        st.error(f"The files were not added: {ui.error_sentence(e)}")
        return
    finally:
        bar.empty()
    st.session_state[REPORT] = report


def show_report() -> None:
    report = st.session_state.get(REPORT)
    if report is None:
        return
    if report.added:
        st.success(f"Added {len(report.added)} file(s) to the collection.")
    if report.failed:
        st.warning(f"{len(report.failed)} file(s) were not added; the reasons are below.")
        st.dataframe(pd.DataFrame([{"file": f.filename, "problem": f.error} for f in report.failed]),
                     hide_index=True, key="rag_failed_table")


def show_hits(hits) -> None:
    st.subheader("Retrieved passages")
    for h in hits:  # plain text only: st.text / st.code never render markup or links
        page = f" · page {h.page}" if h.page else ""
        st.text(f"[{h.rank}] score {h.score:.3f} · {h.source}{page} · characters {h.char_start}-{h.char_end}")
        st.code(h.text, language=None, wrap_lines=True)


# ------------------------------------------------------------------------------------------ page
st.title("RAG")
st.caption("Questions answered from your documents: the same retrieved passages go to every model. "
           "Retrieved text and answers are shown as plain text.")
if error := st.session_state.pop(ERROR, None):
    st.error(error)

try:
    collections = retriever().list_collections()
except Exception as e:
    st.error(f"The document store is not available: {ui.error_sentence(e)}")
    st.stop()

c1, c2 = st.columns([2, 2])
if collections and st.session_state.get("rag_collection") not in collections:
    st.session_state["rag_collection"] = collections[0]
collection = c1.selectbox("Collection", collections, key="rag_collection", placeholder="Create a collection first")
with c2:
    st.text_input("New collection", key="rag_new_collection", placeholder="letters, digits, - or _")
    st.button("Create collection", key="rag_create", on_click=create_collection)

if collection:
    st.subheader("Documents")
    files = st.file_uploader("Add PDF, DOCX, Markdown or text files", type=UPLOAD_TYPES,
                             accept_multiple_files=True, key="rag_files")
    if st.button("Add to collection", key="rag_add", disabled=not files):
        upload(collection, files)
    show_report()
    lr = retriever()
    broken = None
    try:
        docs = lr.documents(collection)
        status = lr.status(collection) if len(docs) else None
    except Exception as e:  # e.g. an unreadable index file: say so and offer the rebuild
        docs, status, broken = pd.DataFrame(), None, ui.error_sentence(e)
    if broken:
        st.error(broken)
        st.button("Rebuild index", key="rag_rebuild_broken", on_click=rebuild, args=(collection,))
    elif len(docs):
        table = docs[[c for c in ("filename", "n_chunks", "n_pages", "n_chars", "doc_id") if c in docs]]
        st.dataframe(table.rename(columns={"n_chunks": "chunks", "n_pages": "pages", "n_chars": "characters"}),
                     hide_index=True, key="rag_docs_table")
        d1, d2 = st.columns([3, 1])
        labels = {row["doc_id"]: f"{row['filename']} ({row['doc_id']})" for row in docs.to_dict("records")}
        chosen = d1.selectbox("Document", list(labels), format_func=labels.get, key="rag_delete_choice")
        d2.button("Delete document", key="rag_delete", on_click=delete_document, args=(collection, chosen))
        if not status["consistent"]:
            st.warning(f"The index has {status['index']} chunks but the store has {status['store']}; "
                       "rebuild the index to bring them back in line.")
            st.button("Rebuild index", key="rag_rebuild", on_click=rebuild, args=(collection,))
    else:
        st.info("This collection has no documents yet. Upload files above.")

    st.subheader("Ask")
    names = [s.name for s in registry.list_specs()]
    st.text_input("Question", key="rag_question", placeholder="Ask something the documents answer")
    q1, q2 = st.columns([3, 1])
    q1.multiselect("Models", names, default=[n for n in registry.default_pair() if n in names], key="rag_models")
    q2.slider("Passages (k)", 1, 10, 3, key="rag_k")
    st.checkbox("Also answer closed-book (without the passages) for contrast", key="rag_closed_book")
    with st.expander("Decoding settings", expanded=False):
        ui.settings_widgets("rag")
    state = st.session_state.get(STATE)
    job = state["job"] if state else None
    busy = job is not None and job.running
    b1, b2, _ = st.columns([1, 1, 6])
    b1.button("Ask", type="primary", key="rag_ask", on_click=start_question, disabled=busy or not len(docs))
    b2.button("Stop", key="rag_stop", on_click=stop_job, help="Stop every model; partial answers are kept.")

    if state:
        st.text(f"Question: {state['question']}")
        show_hits(state["hits"])
        st.subheader("Answers")
        ui.render_job(job)
        fig = ui.comparison_chart(job.results())
        if fig is not None:
            st.plotly_chart(fig, key="rag_chart")
        if busy:
            st.rerun()

# ------------------------------------------------------------------------ retrieval quality (no LM)
st.divider()
st.subheader("Retrieval quality on the toy world")
st.caption("Recall@k and MRR of the retriever alone on toy-world documents whose questions only they answer "
           "(no language model). Saved as a run of kind rag-retrieval.")
e1, e2 = st.columns([1, 3])
n_entities = e1.number_input("Entities", 10, 1000, 100, step=10, key="rag_eval_n")
if e1.button("Measure recall@k", key="rag_eval"):
    from backend.rag import measure_retrieval

    try:
        with st.spinner("Indexing the toy-world documents and retrieving for every question ..."):
            rows, run_id = measure_retrieval(int(n_entities), embedder=_embedder(ui.device_setting()),
                                             store=ui.get_store())
        st.session_state["rag_eval_rows"] = (rows, run_id)
    except Exception as e:
        st.error(f"The measurement failed: {ui.error_sentence(e)}")
if found := st.session_state.get("rag_eval_rows"):
    import plotly.express as px

    rows, run_id = found
    df = pd.DataFrame([{"k": r["extra"]["params"]["k"], "metric": r["metric"], "value": r["value"],
                        "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"), "n": r["n"]} for r in rows])
    fig = px.line(df, x="k", y="value", color="metric", markers=True, range_y=[0, 1.02], height=320)
    recall = df[df["metric"] == "recall@k"]
    fig.add_scatter(x=recall["k"], y=recall["ci_low"], mode="lines", line={"dash": "dot", "width": 1},
                    name="recall 95% CI (low)")
    e2.plotly_chart(fig, key="rag_eval_chart")
    e2.text(f"n = {int(df['n'].iloc[0])} questions; saved as run {run_id}")


# ------------------------------------------------------------------- evaluation (the RAG experiment)
EVAL = "rag_exp"
st.divider()
st.subheader("Evaluation: how much retrieved context each model can use")
st.caption("Toy-world documents whose facts the models never saw are indexed in a throw-away collection; each "
           "question is asked with its top-k retrieved passages (k = 0: closed-book). Answers are scored by exact "
           "match and token F1; faithfulness is the share of answer words found in the retrieved text (no LLM "
           "judge). Every point shows n and a 95% interval. Saved as a run of kind experiment-rag.")
eval_store = ui.get_store()
eval_manager, eval_device = ui.get_manager(), ui.device_setting()


def eval_generator(name: str):
    return eval_manager.get(name, device=eval_device)


with st.container(border=True):
    models, n, seed = kit.common_widgets("rag", EVAL)
    ks = st.multiselect("k (retrieved passages in the prompt; 0 = closed-book)", [0, 1, 2, 3, 4, 5, 8, 10],
                        default=PROFILES["quick"]["rag"]["sweep"]["k"], key=f"{EVAL}_ks", **kit.KEEP)
    cfg = kit.build_config("rag", models, n, seed, {"k": sorted(ks)}, DEFAULT_TASK["rag"])
    st.caption("On a machine without faiss: `--save-plan FILE` here, then `--plan FILE` there runs the models on "
               "exactly these retrieved contexts.")
    eval_job = kit.run_controls(EVAL, cfg, eval_generator, eval_store)

eval_runs = kit.stored_runs(eval_store, "rag")
if eval_runs.empty:
    st.info("No RAG experiment run is stored yet. Press Run above, or run `python -m backend experiment rag` in a "
            "terminal; runs from either appear here.")
    st.stop()
row = kit.pick_run(eval_runs, f"{EVAL}_pick", prefer=eval_job.run_id if eval_job else None)
kit.resume_button(row, EVAL, eval_generator, eval_store)
preds = eval_store.predictions(run_id=row["run_id"])
answers = rv.answer_table(preds)
if answers.empty:
    st.info("This run has no finished instances yet.")
    st.stop()
stored = rv.stored_table(eval_store.measurements(run_ids=[row["run_id"]]))
a1, a2 = st.columns(2)
a1.plotly_chart(rv.metric_lines(answers, "exact match", "Exact match vs k (95% bands)"), key=f"{EVAL}_em_chart")
a2.plotly_chart(rv.metric_lines(answers, "token F1", "Token F1 vs k (95% bands)"), key=f"{EVAL}_f1_chart")
book = rv.book_table(answers)
st.plotly_chart(rv.book_bars(book), key=f"{EVAL}_book_chart")
with st.expander("Closed-book vs open-book table"):
    st.dataframe(book, hide_index=True, key=f"{EVAL}_book_table")
if stored.empty:
    st.caption("Retrieval quality and faithfulness are stored when a run completes; resume this run to get them.")
else:
    r1, r2 = st.columns(2)
    r1.plotly_chart(rv.retrieval_lines(stored), key=f"{EVAL}_retrieval_chart")
    r2.plotly_chart(rv.metric_lines(stored, "faithfulness", "Faithfulness vs k (answer words in the passages)"),
                    key=f"{EVAL}_faith_chart")
    with st.expander("Stored measurements"):
        st.dataframe(stored, hide_index=True, key=f"{EVAL}_stored_table")
