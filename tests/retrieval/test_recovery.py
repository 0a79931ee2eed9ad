"""A document and its chunks are one write; what a crash leaves is repaired when the collection is opened; the
status check compares chunk ids, not counts."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.index import ids_of
from retrieval.service import Retriever
from tests.retrieval.fakes import HashEmbedder

FILES = [("a.md", b"The mill at Kest grinds barley for the valley."),
         ("b.md", b"Velm is a river town that rings copper bells."),
         ("c.md", b"Orra has a white lighthouse built in 1822.")]


@pytest.fixture
def r(any_store, tmp_path):
    return Retriever(any_store, data_dir=tmp_path / "data", embedder=HashEmbedder())


def test_a_document_and_its_chunks_are_written_together(tmp_path):
    """The chunk insert fails after the document row went in (an id already used): the transaction takes both."""
    from store import StoreError, open_store

    r = Retriever(open_store(tmp_path / "a.duckdb"), data_dir=tmp_path / "data", embedder=HashEmbedder())
    r.add_files("c", FILES[:1])
    used = r.store.chunk_ids("c")[0]
    with pytest.raises(StoreError, match="already used"):
        r.store.add_document("c", "new", "new.md", None, 2, "s", {}, chunks=[{"chunk_id": used, "doc_id": "new",
                                                                               "text": "x"}])
    assert list(r.documents("c")["filename"]) == ["a.md"] and r.status("c")["consistent"]


def test_status_compares_ids_not_counts(r):
    r.add_files("c", FILES[:2])
    idx = r.index_file("c")
    index = idx.load()
    some = int(ids_of(index)[0])
    index.remove_ids(np.asarray([some], dtype=np.int64))
    index.add_with_ids(np.zeros((1, index.d), np.float32), np.asarray([99_999], dtype=np.int64))  # same count
    idx.save(index)
    status = r.status("c")
    assert status["index"] == status["store"] and not status["consistent"]
    assert (status["missing"], status["extra"]) == (1, 1)


def test_recover_embeds_what_the_index_lacks_and_drops_what_the_store_lacks(r):
    r.add_files("c", FILES)
    before = sorted((h.chunk_id, round(h.score, 4)) for h in r.search("c", "copper bells", 3))
    idx = r.index_file("c")
    index = idx.load()
    lost = ids_of(index)[:2]
    index.remove_ids(lost)  # a crash after the commit, before the index save
    index.add_with_ids(np.zeros((1, index.d), np.float32), np.asarray([77_777], dtype=np.int64))  # a delete's leftover
    idx.save(index)
    notes = r.recover("c")
    assert any("missing 2 chunk(s)" in n for n in notes) and any("held 1 chunk(s)" in n for n in notes)
    assert r.status("c")["consistent"] and r.recover("c") == []  # repaired once, then nothing to say
    assert sorted((h.chunk_id, round(h.score, 4)) for h in r.search("c", "copper bells", 3)) == before


def test_recover_removes_documents_without_chunks_so_they_can_be_uploaded_again(r):
    """What a store written before documents were atomic may hold after a crash."""
    r.add_files("c", FILES[:1])
    import hashlib

    doc_id = hashlib.sha256(FILES[1][1]).hexdigest()[:16]
    r.store.add_document("c", doc_id, "b.md", None, 10, "x", {})  # a document whose chunks never came
    again = r.add_files("c", FILES[1:2])
    assert again.failed and again.failed[0].error_kind == "duplicate"  # what the probe found
    notes = r.recover("c")
    assert notes == ["Removed 1 document(s) of collection 'c' that an interrupted upload left without text (b.md); "
                     "upload them again."]
    assert r.add_files("c", FILES[1:2]).added
    assert r.status("c")["consistent"] and (r.documents("c")["n_chunks"] > 0).all()
