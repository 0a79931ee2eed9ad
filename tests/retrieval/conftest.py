from __future__ import annotations

import pytest

from retrieval.memory_store import MemoryStore


def _real_store_factory():
    try:
        from store import open_store
    except ImportError:
        return None
    return open_store


@pytest.fixture(scope="session")
def embedder():
    from retrieval.embed import get_embedder

    return get_embedder("cpu")


@pytest.fixture(params=["memory", "duckdb"])
def any_store(request, tmp_path):
    """The retrieval tables: an in-memory double and, once it is importable, the real DuckDB store."""
    if request.param == "memory":
        return MemoryStore()
    open_store = _real_store_factory()
    if open_store is None:
        pytest.skip("store.open_store is not available in this checkout yet")
    st = open_store(tmp_path / "arena.duckdb")
    if not hasattr(st, "add_collection"):
        pytest.skip("this store has no retrieval tables yet")
    return st


@pytest.fixture
def retriever(tmp_path, embedder):
    """A Retriever on the in-memory store double (fast)."""
    from retrieval.service import Retriever

    return Retriever(MemoryStore(), data_dir=tmp_path / "data", embedder=embedder)


@pytest.fixture
def any_retriever(any_store, tmp_path, embedder):
    """The same tests against the store double and the real DuckDB store."""
    from retrieval.service import Retriever

    return Retriever(any_store, data_dir=tmp_path / "data", embedder=embedder)
