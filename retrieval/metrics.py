"""Retrieval metrics (pure Python): recall@k and reciprocal rank, per query and averaged.

`retrieved` is a ranked list of ids (best first, duplicates allowed: e.g. the doc_id of each retrieved
chunk); `relevant` is the set of ids that answer the query.

    recall_at_k(["d3", "d1", "d3"], {"d1"}, k=2) == 1.0
    reciprocal_rank(["d3", "d1"], {"d1"}) == 0.5
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence


def _dedup(ranked: Iterable[Hashable]) -> list:
    seen, out = set(), []
    for r in ranked:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def recall_at_k(retrieved: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the relevant ids found among the first k distinct retrieved ids."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = set(relevant)
    if not relevant:
        raise ValueError("relevant must not be empty: recall is undefined for a query with no answer")
    return len(set(_dedup(retrieved)[:k]) & relevant) / len(relevant)


def hit_at_k(retrieved: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """1.0 if any relevant id is among the first k distinct retrieved ids, else 0.0."""
    return 1.0 if recall_at_k(retrieved, relevant, k) > 0 else 0.0


def reciprocal_rank(retrieved: Sequence[Hashable], relevant: Iterable[Hashable], k: int | None = None) -> float:
    """1 / rank of the first relevant distinct id (0.0 if none within k, or at all when k is None)."""
    relevant = set(relevant)
    for rank, r in enumerate(_dedup(retrieved)[: k or None], start=1):
        if r in relevant:
            return 1.0 / rank
    return 0.0


def mean_recall_at_k(runs: Sequence[tuple[Sequence[Hashable], Iterable[Hashable]]], k: int) -> float:
    """Mean recall@k over (retrieved, relevant) pairs."""
    if not runs:
        raise ValueError("no queries to average over")
    return sum(recall_at_k(r, rel, k) for r, rel in runs) / len(runs)


def mean_reciprocal_rank(runs: Sequence[tuple[Sequence[Hashable], Iterable[Hashable]]], k: int | None = None) -> float:
    """MRR over (retrieved, relevant) pairs."""
    if not runs:
        raise ValueError("no queries to average over")
    return sum(reciprocal_rank(r, rel, k) for r, rel in runs) / len(runs)
