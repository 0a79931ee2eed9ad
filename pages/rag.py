"""RAG: upload documents into a collection, ask a question, and see every chosen model answer with the
retrieved passages side by side (optionally beside its closed-book answer). Measuring the retriever and
running the RAG experiment are on the RAG evaluation page (pages/rag_eval.py)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.generation.compare import CompareJob, Slot, device_setting, error_sentence
from backend.models import registry
from pages.components.charts import comparison_chart
from pages.components.resources import get_embedder, get_manager, get_store
from pages.components.settings import settings_from_state, settings_widgets
from pages.components.streaming import render_job

STATE = "rag_state"  # the current question: hits, columns and the streaming job
ERROR = "rag_error"
REPORT = "rag_report"
UPLOAD_TYPES = ["pdf", "docx", "md", "markdown", "txt"]


def retriever():
    """A Retriever on the app's store; the embedder loads (once per process) only when a search or an
    upload needs it."""
    from retrieval import Retriever

    return Retriever(get_store(), embedder_loader=lambda: get_embedder(device_setting()))


def create_collection() -> None:
    name = (st.session_state.get("rag_new_collection") or "").strip()
    try:
        retriever().create_collection(name)
        st.session_state["rag_collection"] = name
        st.session_state["rag_new_collection"] = ""
    except Exception as e:
        st.session_state[ERROR] = error_sentence(e)


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
    settings = settings_from_state("rag")
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
        manager = get_manager()
        columns = plan_columns(question, hits, models, manager, settings, closed, device_setting())
    except Exception as e:
        st.session_state[ERROR] = error_sentence(e)
        return
    slots = [Slot(c.label, c.model, c.prompt) for c in columns]
    saver = _saver(get_store(), question, collection, k, hits, columns, settings)
    st.session_state[STATE] = {
        "question": question, "collection": collection, "k": k, "hits": hits, "columns": columns,
        "job": CompareJob(slots, settings, manager, on_finish=saver).start(),
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
        st.session_state[ERROR] = error_sentence(e)


def rebuild(collection: str) -> None:
    try:
        retriever().rebuild(collection)
    except Exception as e:
        st.session_state[ERROR] = error_sentence(e)


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
        st.error(f"The files were not added: {error_sentence(e)}")
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
    st.error(f"The document store is not available: {error_sentence(e)}")
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
        docs, status, broken = pd.DataFrame(), None, error_sentence(e)
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
        settings_widgets("rag")
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
        render_job(job)
        fig = comparison_chart(job.results())
        if fig is not None:
            st.plotly_chart(fig, key="rag_chart")
        if busy:
            st.rerun()
