"""Retrieval quality on the toy world's RAG set, and the metric functions themselves."""

from __future__ import annotations

import json

import pytest

from retrieval.evaluate import index_corpus, retrieval_metrics, retrieve, write_jsonl
from retrieval.metrics import (
    hit_at_k,
    mean_recall_at_k,
    mean_reciprocal_rank,
    recall_at_k,
    reciprocal_rank,
)


def _corpus():
    try:
        from backend.toyworld import rag_corpus
    except ImportError:
        rag_corpus = None
    if rag_corpus is not None:
        return rag_corpus(seed=0, n_entities=40)
    # fallback: a generated set of entity passages and questions
    import random

    rng = random.Random(0)
    cities = ["Orra", "Velm", "Kest", "Dunmere", "Ashby", "Pellin", "Torvik", "Marrow", "Quill", "Sable"]
    jobs = ["baker", "sailor", "weaver", "astronomer", "smith", "poet", "gardener", "doctor"]
    docs, qs = [], []
    for i in range(40):
        name = f"{rng.choice('BCDFGHJKLMNPRSTV')}{rng.choice('aeiou')}{rng.choice('lmnrst')}o {rng.choice(cities)}son"
        city, job, year = rng.choice(cities), rng.choice(jobs), rng.randint(1700, 1999)
        docs.append({"doc_id": f"d{i}", "title": name,
                     "text": f"{name} was born in {year} and works as a {job} in {city}."})
        qs.append({"question": f"In which year was {name} born?", "answer": str(year), "doc_id": f"d{i}"})
    return {"documents": docs, "questions": qs}


def test_recall_at_5_on_toy_world_set(retriever, tmp_path):
    corpus = _corpus()
    report = index_corpus(retriever, "toy", corpus["documents"])
    assert not report.failed and len(report.added) == len(corpus["documents"])
    assert not index_corpus(retriever, "toy", corpus["documents"]).files  # idempotent
    rows = retrieve(retriever, "toy", corpus["questions"], k=5, batch_size=16)
    m = retrieval_metrics(rows, ks=(1, 5))
    print(f"toy-world retrieval: {m}")
    assert m["n"] == len(corpus["questions"]) and m["recall@5"] >= 0.9
    assert m["recall@1"] <= m["mrr"] <= m["recall@5"]  # with 5 retrieved, MRR lies between hit@1 and hit@5
    # the rows are JSON-ready for a GPU machine without faiss
    path = write_jsonl(rows, tmp_path / "ctx.jsonl")
    assert json.loads(path.read_text().splitlines()[0])["retrieved"][0]["rank"] == 1


def test_metric_functions():
    assert recall_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    assert recall_at_k(["a", "b", "c"], {"c"}, 3) == 1.0
    assert recall_at_k(["a", "a", "a", "b"], {"a", "b"}, 2) == 1.0  # duplicates (chunks of one doc) collapse
    assert recall_at_k(["a", "x"], {"a", "b"}, 5) == 0.5
    assert hit_at_k(["x", "b"], {"a", "b"}, 2) == 1.0 and hit_at_k(["x", "b"], {"a", "b"}, 1) == 0.0
    assert reciprocal_rank(["x", "x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "a"], {"a"}, k=1) == 0.0
    assert reciprocal_rank([], {"a"}) == 0.0
    assert mean_reciprocal_rank([(["a"], {"a"}), (["b", "a"], {"a"})]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 1)
    with pytest.raises(ValueError):
        recall_at_k(["a"], {"a"}, 0)
    with pytest.raises(ValueError):
        mean_recall_at_k([], 5)
