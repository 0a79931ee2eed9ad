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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from backend.interface import GenerationResult, GenSettings

GENERIC_RAG_TEMPLATE = "Context:\n{context}\nQuestion: {question}\nAnswer:"
GENERIC_CLOSED_TEMPLATE = "Question: {question}\nAnswer:"
CONTEXT_SEPARATOR = "\n"


def _toy_templates() -> dict:
    try:
        from backend.toyworld import TEMPLATES
    except Exception:  # the toy world is optional
        return {}
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
    question = " ".join(question.split())
    if not question:
        raise ValueError("The question is empty. Type a question and ask again.")
    template = template or rag_template()
    used = list(chunks)
    while True:
        prompt = template.format(context=format_context(used), question=question)
        if count_tokens is None or max_tokens is None or not used or count_tokens(prompt) <= max_tokens:
            return prompt, used
        used = used[:-1]


def closed_book_prompt(question: str) -> str:
    return closed_book_template().format(question=" ".join(question.split()))


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
    columns through backend.compare.CompareJob instead). A failing model is kept as that column's error."""
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
    from backend.runinfo import run_meta

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


# ------------------------------------------------------------------------------ evaluation (experiments)
def faithfulness(answer: str, context: str) -> float:
    """Share of the answer's word tokens that occur in the retrieved context (no LLM judge).

    Tokens are lower-cased words and numbers; an empty answer scores 0.0."""
    import re

    words = re.findall(r"\w+", answer.lower())
    if not words:
        return 0.0
    have = set(re.findall(r"\w+", context.lower()))
    return sum(w in have for w in words) / len(words)


def rag_tasks():
    """The two TaskSpecs of the RAG experiment: open-book (retrieved context) and closed-book (k = 0)."""
    from backend.experiments.tasks import TaskSpec

    common = dict(target=" {answer}\n", extract={"strict": "first_line", "flexible": "first_line"},
                  primary="strict", metric="exact_match", stop=["\n"], max_new_tokens=16)
    return (TaskSpec(name="rag-open", template=rag_template(), **common),
            TaskSpec(name="rag-closed", template=closed_book_template(), **common))


def rag_plan(config, count_tokens=None, n_entities: int | None = None):
    """Plan builder for the experiments framework (`register_task("rag", "toy-rag", rag_plan)`).

    The toy world's RAG corpus (documents whose facts the models never saw) is indexed in a throw-away
    collection; each of `config.n` questions is asked at every k of `config.sweep["k"]` with its top-k
    retrieved passages as context (k = 0: closed-book). Instance params are the sweep point only
    ({"k", "query"}: the runner groups by them); the retrieval outcome rides in each instance's doc
    ("gold_doc_id", "retrieved_doc_ids") for `retrieval_measurements` and `answer_measurements`.
    """
    import tempfile

    from backend.experiments.plans import Plan
    from backend.experiments.tasks import Instance
    from backend.toyworld import rag_corpus
    from retrieval.evaluate import index_corpus, retrieve
    from retrieval.memory_store import MemoryStore
    from retrieval.service import Retriever

    ks = sorted({int(k) for k in config.sweep.get("k", [0, 1, 3, 5])})
    corpus = rag_corpus(seed=config.seed, n_entities=n_entities or max(50, config.n))
    questions = corpus["questions"][: config.n]
    open_task, closed_task = rag_tasks()
    with tempfile.TemporaryDirectory(prefix="rag-plan-") as tmp:
        r = Retriever(MemoryStore(), data_dir=tmp)
        index_corpus(r, "toy-rag", corpus["documents"])
        rows = retrieve(r, "toy-rag", questions, k=max([*ks, 1]))
    instances = []
    for i, row in enumerate(rows):
        ranked = [h["doc_id"] for h in row["retrieved"]]
        for k in ks:
            top = row["retrieved"][:k]
            doc = {"question": row["question"], "answer": str(row["answer"]),
                   "context": format_context([_Passage(h["text"]) for h in top]),
                   "gold_doc_id": row["doc_id"], "retrieved_doc_ids": ranked[:k]}
            instances.append(Instance(id=f"k={k}/q={i}", doc=doc, reference=doc["answer"],
                                      params={"k": k, "query": i}, task=(open_task if k else closed_task).name))
    return Plan({open_task.name: open_task, closed_task.name: closed_task}, instances, measure=rag_measurements)


def save_rag_plan(plan, path) -> None:
    """Write a rag_plan's instances as JSONL, so a machine without faiss / sentence-transformers (the GPU
    image) can run the experiment on contexts retrieved here: `run_experiment(..., plan=load_rag_plan(p))`."""
    from retrieval.evaluate import write_jsonl

    write_jsonl(({"id": i.id, "doc": i.doc, "reference": i.reference, "params": i.params, "task": i.task}
                 for i in plan.instances), path)


def load_rag_plan(path):
    """The Plan saved by save_rag_plan (tasks rebuilt from this checkout's templates)."""
    import json
    from pathlib import Path

    from backend.experiments.plans import Plan
    from backend.experiments.tasks import Instance

    open_task, closed_task = rag_tasks()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    instances = [Instance(**json.loads(line)) for line in lines if line.strip()]
    return Plan({open_task.name: open_task, closed_task.name: closed_task}, instances, measure=rag_measurements)


def rag_measurements(plan, predictions: list[dict], families: dict | None = None) -> list[dict]:
    """What a completed RAG experiment run stores besides the runner's exact-match accuracies (`Plan.measure`)."""
    return retrieval_measurements(plan) + answer_measurements(plan, predictions, families)


RETRIEVER_LABEL = "retriever:all-MiniLM-L6-v2"


def retrieval_measurements(plan) -> list[dict]:
    """recall@k (gold document among the top k, Wilson 95% CI) and MRR@k per k > 0 of a rag_plan, as
    measurement rows for the store (model = RETRIEVER_LABEL)."""
    by_k: dict[int, list] = {}
    for inst in plan.instances:
        k = inst.params["k"]
        if k:
            by_k.setdefault(k, []).append((inst.doc["retrieved_doc_ids"], {inst.doc["gold_doc_id"]}))
    return _ranking_rows(by_k)


def _ranking_rows(by_k: dict[int, list]) -> list[dict]:
    from backend.experiments.metrics import wilson_interval
    from retrieval.metrics import recall_at_k, reciprocal_rank

    out = []
    for k, runs in sorted(by_k.items()):
        n = len(runs)
        hits = sum(recall_at_k(r, rel, k) for r, rel in runs)
        lo, hi = wilson_interval(hits, n)
        out.append({"model": RETRIEVER_LABEL, "family": "retriever", "metric": "recall@k", "value": hits / n,
                    "n": n, "ci_low": lo, "ci_high": hi, "extra": {"params": {"k": k}}})
        rr = sum(reciprocal_rank(r, rel, k) for r, rel in runs)
        lo, hi = wilson_interval(rr, n)  # fractional successes, as for token-F1 scores
        out.append({"model": RETRIEVER_LABEL, "family": "retriever", "metric": "mrr@k",
                    "value": rr / n, "n": n, "ci_low": lo, "ci_high": hi, "extra": {"params": {"k": k}}})
    return out


def measure_retrieval(n_entities: int = 100, seed: int = 0, ks=(1, 2, 3, 5, 10), embedder=None,
                      store=None, source: str = "ui") -> tuple[list[dict], str | None]:
    """Retrieval alone (no language model) on the toy world's RAG set: recall@k and MRR@k for each k.

    Returns (measurement rows, run id); with a `store` the rows are saved as a run of kind "rag-retrieval"."""
    import tempfile

    from backend.toyworld import rag_corpus
    from retrieval.evaluate import index_corpus, retrieve
    from retrieval.memory_store import MemoryStore
    from retrieval.service import Retriever

    ks = sorted({int(k) for k in ks if int(k) > 0})
    corpus = rag_corpus(seed=seed, n_entities=n_entities)
    with tempfile.TemporaryDirectory(prefix="rag-retrieval-") as tmp:
        r = Retriever(MemoryStore(), data_dir=tmp, embedder=embedder)
        index_corpus(r, "toy-rag", corpus["documents"])
        rows = retrieve(r, "toy-rag", corpus["questions"], k=max(ks))
    ranked = [([h["doc_id"] for h in row["retrieved"]], {row["doc_id"]}) for row in rows]
    out = _ranking_rows({k: ranked for k in ks})
    if store is None:
        return out, None
    from backend.runinfo import run_meta

    config = {"source": source, "corpus": "toyworld.rag_corpus", "seed": seed, "n_entities": n_entities,
              "ks": ks, "embedder": RETRIEVER_LABEL.split(":", 1)[1]}
    run_id = store.start_run("rag-retrieval", config, run_meta("cpu"))
    try:
        store.add_measurements(run_id, out)
    finally:
        store.finish_run(run_id, "completed", summary={m["metric"] + f"@{m['extra']['params']['k']}": m["value"]
                                                       for m in out})
    return out, run_id


def answer_measurements(plan, predictions: list[dict], families: dict | None = None) -> list[dict]:
    """Mean token F1 (extracted answer vs reference) and faithfulness (share of the answer's tokens found
    in the retrieved context; k > 0 only) per (model, k), from the runner's prediction rows, each with n and
    a 95% Wilson interval over the fractional scores."""
    from backend.experiments.metrics import token_f1, wilson_interval

    insts = {i.id: i for i in plan.instances}
    groups: dict[tuple, dict[str, list[float]]] = {}
    for p in predictions:
        inst = insts.get(p.get("instance_id"))
        if inst is None or p.get("score") is None:
            continue
        g = groups.setdefault((p["model"], inst.params["k"]), {"token_f1": [], "faithfulness": []})
        answer = str(p.get("extracted") or "")
        g["token_f1"].append(token_f1(answer, inst.reference))
        if inst.params["k"]:
            g["faithfulness"].append(faithfulness(answer, inst.doc["context"]))
    out = []
    for (model, k), metrics in sorted(groups.items()):
        for metric, vals in metrics.items():
            if vals:
                lo, hi = wilson_interval(sum(vals), len(vals))
                out.append({"model": model, "family": (families or {}).get(model), "metric": metric,
                            "value": sum(vals) / len(vals), "n": len(vals), "ci_low": lo, "ci_high": hi,
                            "extra": {"params": {"k": k}, "mode": "open-book" if k else "closed-book"}})
    return out


@dataclass
class _Passage:
    text: str
