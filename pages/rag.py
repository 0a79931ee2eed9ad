"""RAG: upload documents into a collection, ask a question, and see every chosen model answer with the
retrieved passages side by side (optionally beside its closed-book answer). Measuring the retriever and
running the RAG experiment are on the RAG evaluation page (pages/rag_eval.py).

Uploads run as background jobs in their own process (backend.rag.start_ingest): the page shows each file's
chunks embedded / total, the rate and the time left, and a Cancel button, and questions keep working meanwhile.
Opening a collection repairs what a crash left in it (retrieval/recovery.py) and says so."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.arena.choices import model_choices
from backend.generation.compare import CompareJob, Slot, device_setting, error_sentence
from backend.models import registry
from pages.components.charts import comparison_chart
from pages.components.resources import get_embedder, get_manager, get_store
from pages.components.settings import settings_from_state, settings_widgets
from pages.components.streaming import chart_inputs, render_job
from retrieval import RetrievalError, jobs
from retrieval.config import IngestLimits

STATE = "rag_state"  # the current question: hits, columns and the streaming job
ERROR = "rag_error"
NOTES = "rag_notes"  # sentences of the last repair
JOB = "rag_job"  # this session's last upload job (its folder)
UPLOADER = "rag_uploader_n"  # bumped after an upload starts, so the uploader comes back empty
LIMITS = IngestLimits()
UPLOAD_TYPES = ["pdf", "docx", "md", "markdown", "txt"]


def sentence(e: BaseException) -> str:
    """The user-facing sentence of an error: retrieval's errors carry one, like the backend's."""
    return str(e) if isinstance(e, RetrievalError) else error_sentence(e)


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
        st.session_state[ERROR] = sentence(e)


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
        st.session_state[ERROR] = sentence(e)
        return
    slots = [Slot(c.label, c.model, c.prompt) for c in columns]
    saver = _saver(get_store(), question, collection, k, hits, columns, settings)
    st.session_state[STATE] = {
        "question": question, "collection": collection, "k": k, "hits": hits, "columns": columns,
        "job": CompareJob(slots, settings, manager, on_finish=saver,
                          stop_at_line=bool(st.session_state.get("rag_line_stop"))).start(),
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
        st.session_state[ERROR] = sentence(e)


def rebuild(collection: str) -> None:
    try:
        retriever().rebuild(collection)
    except Exception as e:
        st.session_state[ERROR] = sentence(e)


def repair(collection: str) -> None:
    try:
        st.session_state[NOTES] = retriever().recover(collection)
    except Exception as e:
        st.session_state[ERROR] = sentence(e)


@st.cache_resource(show_spinner="Checking the collection after the last run ...")
def recovered(db: str, collection: str) -> list[str]:
    """What a crash left in the collection, repaired once per process (and again after a job stopped)."""
    return retriever().recover(collection)


def start_upload(collection: str) -> None:
    from backend.rag import start_ingest

    files = st.session_state.get(f"rag_files_{st.session_state.get(UPLOADER, 0)}") or []
    try:
        job = start_ingest(collection, [(f.name, f.getvalue()) for f in files], db_path=get_store().path,
                           device=device_setting())
    except Exception as e:  # too many files / bytes, a bad name, a full disk: a sentence, nothing staged
        st.session_state[ERROR] = f"The files were not added: {sentence(e)}"
        return
    st.session_state[JOB] = str(job)
    st.session_state[UPLOADER] = st.session_state.get(UPLOADER, 0) + 1


def _job_line(status: dict) -> str:
    done, total = status["chunks_done"], status["chunks_total"]
    text = f"{len(status['files'])} file(s) into {status['collection']}: "
    text += f"{done:,} / {total:,} chunks embedded" if total else "reading the files"
    if status.get("rate"):
        text += f", {status['rate']:.1f} chunks/s"
    if status.get("eta_s") is not None and status["state"] == "running":
        text += f", about {status['eta_s']:.0f} s left"
    return text


def _file_table(status: dict) -> pd.DataFrame:
    return pd.DataFrame([{"file": f["name"], "state": f["state"],
                          "chunks": f"{f['chunks_done']:,} / {f['chunks_total']:,}" if f["chunks_total"] else ""}
                         for f in status["files"]])


@st.fragment(run_every=1.0)
def live_jobs(collection: str) -> None:
    """Running uploads of this collection (any session's), redrawn every second; the page reruns when they end."""
    active = [j for j in jobs.list_jobs(collection=collection) if j["state"] in ("queued", "running")]
    if not active:
        recovered.clear()  # a job that stopped may have left the index behind: check again
        st.rerun(scope="app")
    for status in active:
        total = status["chunks_total"] or 0
        st.progress(status["chunks_done"] / total if total else 0.0, text=_job_line(status))
        st.dataframe(_file_table(status), hide_index=True, key=f"rag_job_files_{status['id']}")
        st.button("Cancel this upload", key=f"rag_cancel_{status['id']}", on_click=jobs.request_cancel,
                  args=(status["job"],), help="Stops between two batches: the file being embedded is not added, "
                                              "files already added stay.")


def show_report() -> None:
    """The outcome of this session's last upload, once its job ended."""
    job = st.session_state.get(JOB)
    if not job:
        return
    try:
        status = jobs.read_status(job)
    except Exception as e:
        st.session_state.pop(JOB, None)
        st.error(sentence(e))
        return
    if status["state"] in ("queued", "running"):
        return
    added = [f for f in status["files"] if f["state"] == "added"]
    failed = [f for f in status["files"] if f["state"] != "added"]
    if added:
        st.success(f"Added {len(added)} file(s) to the collection.")
    if status["state"] == "cancelled":
        st.warning("The upload was cancelled: the files listed as added are complete, the others were not added.")
    if status.get("error"):
        st.error(status["error"])
    if failed:
        st.warning(f"{len(failed)} file(s) were not added; the reasons are below.")
        st.dataframe(pd.DataFrame([{"file": f["name"], "problem": f["error"] or f["state"]} for f in failed]),
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
    st.error(f"The document store is not available: {sentence(e)}")
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
    files = st.file_uploader(
        f"Add PDF, DOCX, Markdown or text files (up to {LIMITS.max_files_per_upload} files, "
        f"{LIMITS.max_file_bytes // 2**20} MiB each, {LIMITS.max_upload_bytes // 2**20} MiB together)",
        type=UPLOAD_TYPES, accept_multiple_files=True, key=f"rag_files_{st.session_state.get(UPLOADER, 0)}")
    st.button("Add to collection", key="rag_add", disabled=not files, on_click=start_upload, args=(collection,))
    lr = retriever()
    try:
        for note in [*recovered(str(get_store().path), collection), *st.session_state.pop(NOTES, [])]:
            st.info(note)
    except Exception:  # e.g. an unreadable index: the section below says so and offers the rebuild
        st.session_state.pop(NOTES, None)
    running = [j for j in jobs.list_jobs(collection=collection) if j["state"] in ("queued", "running")]
    if running:
        live_jobs(collection)
    show_report()
    broken = None
    try:
        docs = lr.documents(collection)
        status = lr.status(collection) if len(docs) else None
    except Exception as e:  # e.g. an unreadable index file: say so and offer the rebuild
        docs, status, broken = pd.DataFrame(), None, sentence(e)
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
        if not status["consistent"] and not running:  # (an upload in flight is consistent under its lock)
            st.warning(f"The index has {status['index']} chunks but the store has {status['store']} "
                       f"({status['missing']} missing from the index, {status['extra']} left over); repair the "
                       "index to bring them back in line.")
            st.button("Repair the index", key="rag_repair", on_click=repair, args=(collection,))
    elif not running:
        st.info("This collection has no documents yet. Upload files above.")

    st.subheader("Ask")
    names = model_choices().names  # only models that can load here
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
        with st.expander("The exact prompt each model saw"):  # built from the template, passages and question
            for c in state["columns"]:
                st.text(f"{c.label} ({c.n_chunks} passages)" if c.mode == "rag" else c.label)
                st.code(c.prompt, language=None, wrap_lines=True)
        st.subheader("Answers")
        render_job(job)
        fig = comparison_chart(*chart_inputs(job))  # one bar per column: closed-book is its own bar
        if fig is not None:
            st.plotly_chart(fig, key="rag_chart")
        if busy:
            st.rerun()
