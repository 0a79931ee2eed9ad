"""RAG glue: retrieved chunks -> a prompt for the generators, and the record of a RAG question.

retrieval/ knows nothing about language models; this module knows both sides:

    hits = Retriever(store).search(collection, question, k)           # ranked chunks (retrieval/)
    prompt, used = build_prompt(question, hits, count_tokens=gen.count_tokens, max_tokens=budget)
    gen.stream(prompt, settings)                                        # any Generator (backend/)
    record_rag(store, question, collection, k, hits, results, settings)  # run kind "rag"

Prompt format: the bundled toy models were trained on `backend.toyworld.TEMPLATES["rag"]` (or "qa"),
"{context}\\nQuestion: {question}\\nAnswer:"; without the toy world a generic
"Context: ...\\nQuestion: ...\\nAnswer:" is used. Retrieved text is data: it only fills {context}; it never
selects models, settings or anything the app does, and the pages show it (and answers) as plain text.

Uploads are ingested in the background: `start_ingest` stages the files (retrieval/jobs.py) and starts
`python -m backend rag --db DB ingest-job JOB` in its own process, so the caller's searches never wait behind
it; `retrieval.jobs.read_status(job)` follows it and `retrieval.jobs.request_cancel(job)` stops it.

The RAG *experiment* (its plan, saved plans, recall@k / faithfulness measurements) is
`backend.experiments.rag`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from backend.generation.interface import GenerationResult, GenSettings
from backend.runinfo import run_meta
from backend.toyworld import TEMPLATES
from retrieval import jobs
from retrieval.config import IngestLimits

REPO_ROOT = Path(__file__).resolve().parents[1]
_WORKERS: list[subprocess.Popen] = []  # ingest processes started here, reaped when they end

GENERIC_RAG_TEMPLATE = "Context:\n{context}\nQuestion: {question}\nAnswer:"
GENERIC_CLOSED_TEMPLATE = "Question: {question}\nAnswer:"
CONTEXT_SEPARATOR = "\n"


def _toy_templates() -> dict:
    return TEMPLATES if isinstance(TEMPLATES, dict) else {}


def rag_template() -> str:
    t = _toy_templates()
    return t.get("rag") or t.get("qa") or t.get("qa_open") or GENERIC_RAG_TEMPLATE


def closed_book_template() -> str:
    return _toy_templates().get("qa_closed") or GENERIC_CLOSED_TEMPLATE


def format_context(chunks: Sequence) -> str:
    """The retrieved chunks' text, best first, one passage per line block (no markup, no sources)."""
    return CONTEXT_SEPARATOR.join(" ".join(c.text.split()) for c in chunks)


def build_prompt(
    question: str,
    chunks: Sequence,
    template: str | None = None,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> tuple[str, list]:
    """Fill the RAG template with as many of the top chunks as fit in `max_tokens` (model tokens).

    Returns (prompt, chunks used). Lower-ranked chunks are dropped first; with no budget every chunk is used.
    """
    question = clean_question(question)
    if not question:
        raise ValueError("The question is empty. Type a question and ask again.")
    template = template or rag_template()
    used = list(chunks)
    while True:
        prompt = template.format(context=format_context(used), question=question)
        if count_tokens is None or max_tokens is None or not used or count_tokens(prompt) <= max_tokens:
            return prompt, used
        used = used[:-1]


def clean_question(question: str) -> str:
    """One line of question: whitespace collapsed, and a "Question:" / "Answer:" the user typed around it
    dropped (the template adds both; "Question: Question: ..." is a format the models never saw)."""
    q = " ".join(question.split())
    q = re.sub(r"^(question\s*:\s*)+", "", q, flags=re.IGNORECASE)
    return re.sub(r"(\s*answer\s*:)+$", "", q, flags=re.IGNORECASE).strip()


def closed_book_prompt(question: str) -> str:
    return closed_book_template().format(question=clean_question(question))


def prompt_budget(info, settings: GenSettings) -> int | None:
    """Prompt tokens a model can take: its max context minus the new tokens (None: no hard limit)."""
    limit = getattr(info, "max_context", None) or getattr(info, "train_context", None)
    return None if limit is None else max(16, int(limit) - settings.max_new_tokens)


@dataclass
class RagColumn:
    """One answer column: a model with (mode "rag") or without (mode "closed_book") the retrieved context."""

    model: str
    mode: str  # "rag" | "closed_book"
    prompt: str
    n_chunks: int = 0
    result: GenerationResult | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return self.model if self.mode == "rag" else f"{self.model} (closed-book)"


@dataclass
class RagAnswer:
    question: str
    collection: str
    k: int
    hits: list
    columns: list[RagColumn] = field(default_factory=list)


def plan_columns(question: str, hits: Sequence, models: Sequence[str], manager, settings: GenSettings,
                 closed_book: bool = False, device: str = "auto") -> list[RagColumn]:
    """One column per model with the RAG prompt fitted to its context, plus closed-book columns if asked."""
    cols = []
    for name in models:
        gen = manager.get(name, device=device)
        prompt, used = build_prompt(question, hits, count_tokens=gen.count_tokens,
                                    max_tokens=prompt_budget(gen.info, settings))
        cols.append(RagColumn(name, "rag", prompt, len(used)))
    if closed_book:
        cols += [RagColumn(name, "closed_book", closed_book_prompt(question)) for name in models]
    return cols


def ask(retriever, manager, collection: str, question: str, models: Sequence[str], k: int,
        settings: GenSettings, closed_book: bool = False, device: str = "auto",
        on_token: Callable[[RagColumn, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> RagAnswer:
    """Retrieve, then let every model answer one after the other (CLI and tests; the page streams
    columns through backend.generation.compare.CompareJob instead). A failing model is kept as that column's error."""
    settings.validate()
    hits = retriever.search(collection, question, k)
    answer = RagAnswer(question, collection, k, hits,
                       plan_columns(question, hits, models, manager, settings, closed_book, device))
    for col in answer.columns:
        try:
            gen = manager.get(col.model, device=device)
            for ev in gen.stream(col.prompt, settings, should_stop=should_stop):
                if isinstance(ev, GenerationResult):
                    col.result = ev
                elif on_token is not None:
                    on_token(col, ev.text)
        except Exception as e:  # noqa: BLE001 - one model's failure must not hide the others' answers
            col.error = str(e) or type(e).__name__
    return answer


def record_rag(store, question: str, collection: str, k: int, hits: Sequence,
               columns: Sequence[RagColumn], settings: GenSettings, source: str = "ui",
               device: str | None = None) -> str:
    """Save one RAG question as a run of kind "rag": config (question, collection, k, models, settings,
    templates), the retrieved chunks in the summary, one measurement and one prediction per answered column."""
    done = [c for c in columns if c.result is not None]
    if not done:
        raise ValueError("There is nothing to record: no model produced an answer.")
    retrieved = [{"rank": h.rank, "chunk_id": h.chunk_id, "doc_id": h.doc_id, "source": h.source,
                  "page": h.page, "char_start": h.char_start, "char_end": h.char_end,
                  "score": round(float(h.score), 6)} for h in hits]
    config = {"source": source, "collection": collection, "k": k, "question": question,
              "models": sorted({c.model for c in columns}),
              "closed_book": any(c.mode == "closed_book" for c in columns),
              "settings": asdict(settings), "template": rag_template(),
              "closed_book_template": closed_book_template()}
    meta = run_meta(device)
    meta["device_names"] = sorted({c.result.metrics.device for c in done})
    run_id = store.start_run("rag", config, meta)
    status = "failed"
    try:
        store.add_measurements(run_id, [
            {**c.result.metrics.to_dict(), "model": c.model, "family": c.result.family, "warmup": 0,
             "repeats": 1, "mode": c.mode, "n_chunks": c.n_chunks, "finish_reason": c.result.finish_reason,
             "source": source} for c in done
        ])
        store.add_predictions(run_id, [
            {"model": c.model, "instance_id": f"q0-{c.mode}", "prompt": c.prompt, "output": c.result.text,
             "params": {**asdict(c.result.settings), "k": k, "mode": c.mode, "collection": collection},
             "mode": c.mode, "retrieved_chunk_ids": [h.chunk_id for h in hits[: c.n_chunks]] if c.mode == "rag"
             else [], "source": source} for c in done
        ])
        status = "cancelled" if all(c.result.finish_reason == "cancelled" for c in done) else "completed"
    finally:
        store.finish_run(run_id, status, summary={
            "retrieved": retrieved,
            "answers": {c.label: {"finish_reason": c.result.finish_reason, "new_tokens": c.result.metrics.new_tokens}
                        for c in done},
            "errors": {c.label: c.error for c in columns if c.error},
        })
    return run_id


def start_ingest(collection: str, files: list[tuple[str, bytes]], db_path: str | Path,
                 data_dir: str | Path | None = None, device: str = "auto",
                 limits: IngestLimits | None = None) -> Path:
    """Stage an upload and ingest it in a background process; returns the job folder (retrieval/jobs.py).
    Refuses a bad upload (too many files, too many bytes, a bad collection name) at once with a sentence."""
    job = jobs.create_job(collection, files, limits, root=Path(data_dir) if data_dir is not None else None)
    threads = str(jobs.worker_threads())  # torch reads these at start: one core stays free for this process
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with open(job / "log.txt", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "rag", "--db", str(db_path), "ingest-job", str(job), "--device", device],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    _WORKERS[:] = [p for p in _WORKERS if p.poll() is None] + [proc]  # poll() reaps the finished ones
    return job

