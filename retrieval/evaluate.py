"""Retrieval for evaluations: index a corpus, retrieve for many questions at once, score the ranking.

For the RAG experiment (backend/experiments), e.g. on `backend.toyworld.rag_corpus(seed, n)`:

    from retrieval import Retriever
    from retrieval.memory_store import MemoryStore
    from retrieval.evaluate import index_corpus, retrieve, retrieval_metrics

    r = Retriever(MemoryStore(), data_dir=tmp_dir)            # throw-away collection
    index_corpus(r, "toy-rag", corpus["documents"])            # [{"doc_id", "title", "text"}]
    rows = retrieve(r, "toy-rag", corpus["questions"], k=8)    # [{"question", "answer", "doc_id"}] + "retrieved"
    retrieval_metrics(rows, ks=(1, 3, 5))   # {"recall@1": .., "recall@3": .., "recall@5": .., "mrr": .., "n": ..}

Rows are plain dicts (JSON-ready), so contexts can be retrieved once on a CPU machine and written to JSONL
for a GPU machine that has no faiss / sentence-transformers (`write_jsonl`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from retrieval.metrics import mean_recall_at_k, mean_reciprocal_rank


def index_corpus(retriever, collection: str, documents: Sequence[dict], progress=None):
    """Add [{"doc_id", "title", "text"}] to `collection`, skipping doc_ids already in it. Returns the report."""
    retriever.create_collection(collection)
    have = set(retriever.store.documents(collection)["doc_id"].astype(str))
    return retriever.add_texts(collection, [d for d in documents if str(d["doc_id"]) not in have], progress)


def retrieve(retriever, collection: str, questions: Sequence[dict], k: int, batch_size: int = 256) -> list[dict]:
    """Each question dict plus "retrieved": its top-k chunks (rank, doc_id, chunk_id, score, source, page, text)."""
    out = []
    for start in range(0, len(questions), batch_size):
        batch = list(questions[start : start + batch_size])
        hits = retriever.search_many(collection, [q["question"] for q in batch], k)
        for q, hs in zip(batch, hits, strict=True):
            out.append({**q, "retrieved": [
                {"rank": h.rank, "doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": h.score,
                 "source": h.source, "page": h.page, "text": h.text} for h in hs]})
    return out


def retrieval_metrics(rows: Sequence[dict], ks: Iterable[int] = (1, 3, 5)) -> dict:
    """recall@k (relevant = the question's "doc_id", or "doc_ids" when several) and MRR over `rows`."""
    runs = [([h["doc_id"] for h in r["retrieved"]], set(r.get("doc_ids") or [r["doc_id"]])) for r in rows]
    res = {f"recall@{k}": mean_recall_at_k(runs, k) for k in ks}
    res["mrr"] = mean_reciprocal_rank(runs)
    res["n"] = len(runs)
    return res


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
