"""Retrieval quality on the toy world's RAG set, and the metric functions themselves."""

from __future__ import annotations

import pytest

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


def test_recall_at_5_on_toy_world_set(retriever):
    corpus = _corpus()
    report = retriever.add_texts("toy", corpus["documents"])
    assert not report.failed
    questions = corpus["questions"]
    results = retriever.search_many("toy", [q["question"] for q in questions], k=5)
    runs = [([h.doc_id for h in hits], {q["doc_id"]}) for hits, q in zip(results, questions, strict=True)]
    r5 = mean_recall_at_k(runs, 5)
    mrr = mean_reciprocal_rank(runs)
    print(f"recall@5={r5:.3f} recall@1={mean_recall_at_k(runs, 1):.3f} MRR={mrr:.3f} n={len(runs)}")
    assert r5 >= 0.9
    assert mrr >= mean_recall_at_k(runs, 1)  # MRR is at least the hit rate at rank 1


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
