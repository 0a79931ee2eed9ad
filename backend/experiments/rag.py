"""The RAG experiment: its plan (retrieved contexts for the toy world's RAG questions), a saved plan's
file format, and the measurements a completed run adds (recall@k, MRR@k, token F1, faithfulness).

Prompt building, asking and recording a single RAG question live in `backend.rag`; retrieval itself
(chunking, embedding, the FAISS index) in `retrieval/`. Importing this module registers the "toy-rag" task.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.experiments.config import ExperimentConfig
from backend.experiments.metrics import token_f1, wilson_interval
from backend.experiments.registry import Plan, register_task
from backend.experiments.tasks import Instance, TaskError, TaskSpec, stable_seed
from backend.rag import closed_book_template, format_context, rag_template
from backend.runinfo import run_meta
from backend.toyworld import rag_corpus
from retrieval.evaluate import index_corpus, retrieve, write_jsonl
from retrieval.memory_store import MemoryStore
from retrieval.metrics import recall_at_k, reciprocal_rank
from retrieval.service import Retriever


def faithfulness(answer: str, context: str) -> float:
    """Share of the answer's word tokens that occur in the retrieved context (no LLM judge).

    Tokens are lower-cased words and numbers; an empty answer scores 0.0."""
    words = re.findall(r"\w+", answer.lower())
    if not words:
        return 0.0
    have = set(re.findall(r"\w+", context.lower()))
    return sum(w in have for w in words) / len(words)


RAG_OPEN_VERSION = 2  # v1: the top-k retrieved passages in rank order (the gold one first in 97 of 100 prompts)


def rag_tasks(open_version: int = RAG_OPEN_VERSION):
    """The two TaskSpecs of the RAG experiment: open-book (k passages) and closed-book (k = 0)."""
    common = dict(target=" {answer}\n", extract={"strict": "first_line", "flexible": "first_line"},
                  primary="strict", metric="exact_match", stop=["\n"], max_new_tokens=16)
    return (TaskSpec(name="rag-open", template=rag_template(), version=open_version, **common),
            TaskSpec(name="rag-closed", template=closed_book_template(), **common))


def gold_positions(n: int, k: int, rng: random.Random) -> list[int]:
    """n gold positions (1 = first passage, k = last, right before the question), each used n/k times (one more
    for the first n % k positions of a random order), in random order: uniform over the k passages."""
    spare = rng.sample(range(1, k + 1), k)
    pos = [1 + i % k for i in range(n - n % k)] + spare[: n % k]
    rng.shuffle(pos)
    return pos


def rag_plan(config, count_tokens=None, n_entities: int | None = None):
    """Plan builder for the experiments framework (registered as task "toy-rag" below; rag-open v2).

    The toy world's RAG corpus (documents whose facts the models never saw) is indexed in a throw-away
    collection. Each of `config.n` questions is asked at every k of `config.sweep["k"]` with k passages (whole
    documents, as training's one article per question): its gold document and the k - 1 documents the retriever
    ranks highest among the others (hard distractors, in rank order), the gold one at a position drawn uniformly
    over the k (`gold_positions`), so reading is measured
    apart from retrieval and from where the answer sits (k = 0: closed-book). Params: {"k", "gold_pos", "query"}
    (the runner groups by k and gold_pos); each doc carries "gold_doc_id", "context_doc_ids" and
    "retrieved_doc_ids" (the retriever's own top k, for recall@k).
    """
    ks = sorted({int(k) for k in config.sweep.get("k", [0, 1, 2, 4])})
    corpus = rag_corpus(seed=config.seed, n_entities=n_entities or max(50, config.n))
    questions = corpus["questions"][: config.n]
    texts = {d["doc_id"]: " ".join(d["text"].split()) for d in corpus["documents"]}
    open_task, closed_task = rag_tasks()
    with tempfile.TemporaryDirectory(prefix="rag-plan-") as tmp:
        r = Retriever(MemoryStore(), data_dir=tmp)
        index_corpus(r, "toy-rag", corpus["documents"])
        rows = retrieve(r, "toy-rag", questions, k=max([*ks, 1]) + 4)  # room for chunks of one document
    positions = {k: gold_positions(len(rows), k, random.Random(stable_seed(config.seed, "rag-gold", k)))
                 for k in ks if k}
    instances = []
    for i, row in enumerate(rows):
        ranked = [h["doc_id"] for h in row["retrieved"]]
        gold = row["doc_id"]
        others = [(d, texts[d]) for d in dict.fromkeys(ranked) if d != gold]  # whole documents, in rank order
        if len(others) < max(ks) - 1:
            raise TaskError(f"The retriever returned {len(others)} other passages for a question; k = {max(ks)} "
                            "needs k - 1. Lower k or use more entities.")
        for k in ks:
            params = {"k": k, "query": i}
            passages = []
            if k:
                passages = others[: k - 1]
                passages.insert(positions[k][i] - 1, (gold, texts[gold]))
                params = {"k": k, "gold_pos": positions[k][i], "query": i}
            doc = {"question": row["question"], "answer": str(row["answer"]),
                   "context": format_context([_Passage(t) for _, t in passages]), "gold_doc_id": gold,
                   "context_doc_ids": [d for d, _ in passages], "retrieved_doc_ids": ranked[:k]}
            instances.append(Instance(id=f"k={k}/q={i}", doc=doc, reference=doc["answer"], params=params,
                                      task=(open_task if k else closed_task).name))
    return Plan({open_task.name: open_task, closed_task.name: closed_task}, instances, measure=rag_measurements)


def save_rag_plan(plan, path) -> None:
    """Write a rag_plan's instances as JSONL, so a machine without faiss / sentence-transformers (the GPU
    image) can run the experiment on contexts retrieved here: `run_experiment(..., plan=load_rag_plan(p))`.
    Each line records its task's version, so a plan saved by an older checkout keeps its meaning."""
    write_jsonl(({"id": i.id, "doc": i.doc, "reference": i.reference, "params": i.params, "task": i.task,
                  "task_version": plan.tasks[i.task].version} for i in plan.instances), path)


def load_rag_plan(path):
    """The Plan saved by save_rag_plan (tasks rebuilt from this checkout's templates, at the file's versions:
    lines without one come from before versions, rag-open v1)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    versions = {r.pop("task_version", 1) for r in rows if r.get("task") == "rag-open"}
    if len(versions) > 1:
        raise TaskError(f"{path} mixes rag-open versions {sorted(versions)}; save the plan again with --save-plan.")
    open_task, closed_task = rag_tasks(versions.pop() if versions else RAG_OPEN_VERSION)
    for r in rows:
        r.pop("task_version", None)
    instances = [Instance(**r) for r in rows]
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


def rag_file_plan(config: ExperimentConfig) -> Plan:
    """A RAG plan saved by `experiment rag --save-plan` (no retrieval here: faiss is not needed), cut to the
    config's k values and its first n queries."""
    try:
        plan = load_rag_plan(config.data)
    except FileNotFoundError:
        raise TaskError(f"There is no plan file {config.data!r}; write one with "
                        "`python -m backend experiment rag --save-plan FILE`.") from None
    except (json.JSONDecodeError, TypeError, KeyError, UnicodeDecodeError) as e:
        raise TaskError(f"{config.data} is not a RAG plan file ({e}); write one with "
                        "`python -m backend experiment rag --save-plan FILE`.") from None
    ks = set(config.sweep.get("k") or [])
    plan.instances = [i for i in plan.instances
                      if (not ks or i.params.get("k") in ks) and i.params.get("query", 0) < config.n]
    if not plan.instances:
        raise TaskError(f"{config.data} has no question at k in {sorted(ks)}; change --ks or --n.")
    return plan


register_task("rag", "toy-rag", rag_plan)
