"""Collections, documents and chunks (metadata for retrieval/'s FAISS index)."""

import pytest

from store import StoreError


def _chunks(doc_id, ids):
    return [{"chunk_id": i, "doc_id": doc_id, "source": f"{doc_id}.pdf", "page": 1 + i % 2, "char_start": 10 * i,
             "char_end": 10 * i + 9, "text": f"chunk {i}"} for i in ids]


def test_collection_document_chunk_round_trip(store):
    store.add_collection("docs", "all-MiniLM-L6-v2", 384)
    store.add_collection("docs", "all-MiniLM-L6-v2", 384)  # same again: nothing happens
    with pytest.raises(StoreError, match="already exists"):
        store.add_collection("docs", "other", 768)
    assert store.next_chunk_id("docs") == 0
    store.add_document("docs", "d1", "d1.pdf", 2, 1234, "ab" * 32, {"kind": "pdf"})
    assert store.add_chunks("docs", _chunks("d1", range(4))) == 4
    assert store.next_chunk_id("docs") == 4
    docs = store.documents("docs")
    assert docs.iloc[0][["doc_id", "filename", "n_pages", "n_chars", "n_chunks"]].tolist() == ["d1", "d1.pdf", 2, 1234, 4]
    assert docs.iloc[0].meta == {"kind": "pdf"}
    c = store.chunks("docs", [3, 1, 99])
    assert list(c.chunk_id) == [1, 3] and list(c.text) == ["chunk 1", "chunk 3"] and list(c.page) == [2, 2]
    col = store.collections().iloc[0]
    assert (col["name"], col.embedder, col.dim, col.n_documents, col.n_chunks) == ("docs", "all-MiniLM-L6-v2", 384, 1, 4)


def test_deleted_ids_are_never_reused(store):
    store.add_collection("c", "e", 8)
    store.add_document("c", "d1", "a.txt", None, 10, "x", {})
    store.add_chunks("c", _chunks("d1", range(3)))
    store.add_document("c", "d2", "b.txt", None, 10, "y", {})
    store.add_chunks("c", _chunks("d2", range(3, 5)))
    assert store.delete_document("c", "d2") == [3, 4]
    assert store.next_chunk_id("c") == 5  # not 3
    assert list(store.documents("c").doc_id) == ["d1"] and len(store.chunks("c")) == 3
    assert store.reserve_chunk_ids("c", 10) == 5 and store.next_chunk_id("c") == 15
    assert store.delete_document("c", "nope") == []


def test_conflicts_and_unknown_collections_are_clear_errors(store):
    store.add_collection("c", "e", 8)
    store.add_document("c", "d1", "a.txt", None, 10, "x", {})
    with pytest.raises(StoreError, match="already in collection"):
        store.add_document("c", "d1", "a.txt", None, 10, "x", {})
    store.add_chunks("c", _chunks("d1", [0, 1]))
    with pytest.raises(StoreError, match="already used"):
        store.add_chunks("c", _chunks("d1", [1, 2]))
    assert len(store.chunks("c")) == 2  # the failed batch left nothing behind
    with pytest.raises(StoreError, match="same chunk_id"):
        store.add_chunks("c", _chunks("d1", [5, 5]))
    with pytest.raises(StoreError, match="no document collection named 'zz'"):
        store.add_chunks("zz", _chunks("d1", [7]))
    with pytest.raises(StoreError, match="no document collection"):
        store.next_chunk_id("zz")


def test_drop_collection_removes_everything(store):
    store.add_collection("a", "e", 8)
    store.add_collection("b", "e", 8)
    store.add_document("a", "d", "a.txt", None, 1, "x", {})
    store.add_chunks("a", _chunks("d", [0]))
    store.drop_collection("a")
    assert list(store.collections().name) == ["b"]
    assert store.documents("a").empty and store.chunks("a").empty
    store.drop_collection("missing")  # no error
