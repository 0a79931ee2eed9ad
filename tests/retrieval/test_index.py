"""Index round trips: after a restart, after deleting a document (ids survive), rebuild, atomic files."""

from __future__ import annotations

import os

import pytest

from retrieval import index as index_mod
from retrieval.errors import RetrievalError
from retrieval.service import Retriever
from tests.retrieval.docs import make_docx, make_pdf

FILES = [
    ("orra.pdf", make_pdf(["The lighthouse of Orra was built in 1822 by Mira Kest.",
                           "Orra harbour trades salt and amber with Velm."])),
    ("velm.docx", make_docx(["Velm is a river town famous for its copper bells.",
                             "The bell foundry of Velm employs forty smiths."])),
    ("kest.md", b"# Kest\n\nThe windmill at Kest grinds barley for the whole valley."),
]


def _fresh(retriever: Retriever) -> Retriever:
    """A new Retriever on the same store and folder, with the in-process index cache dropped (a restart)."""
    index_mod._READ_CACHE.clear()
    return Retriever(retriever.store, data_dir=retriever.data_dir, embedder=retriever.embedder)


def _hits(r: Retriever, q: str, k: int = 3):
    return [(h.chunk_id, h.source, h.page, round(h.score, 5)) for h in r.search("c1", q, k)]


def _same(a: list, b: list) -> bool:
    """Same chunks in the same order, scores within 1e-3 (a bfloat16 embedder's vectors depend slightly on
    which texts share a batch, so a re-embedded chunk scores a hair differently)."""
    return [h[:3] for h in a] == [h[:3] for h in b] and all(abs(x[3] - y[3]) < 1e-3 for x, y in zip(a, b, strict=True))


def test_search_returns_sources_pages_offsets(retriever):
    retriever.add_files("c1", FILES)
    [top] = retriever.search("c1", "When was the lighthouse built?", k=1)
    assert top.source == "orra.pdf" and top.page == 1 and top.rank == 1
    assert "1822" in top.text and 0 < top.score <= 1.0001
    assert top.char_end - top.char_start == len(top.text)
    [bell] = retriever.search("c1", "Which town makes copper bells?", k=1)
    assert bell.source == "velm.docx" and bell.page is None


def test_round_trip_after_restart_and_delete(any_retriever):
    retriever = any_retriever
    retriever.add_files("c1", FILES)
    before = {q: _hits(retriever, q) for q in ("lighthouse 1822", "copper bells", "barley windmill")}
    restarted = _fresh(retriever)
    assert {q: _hits(restarted, q) for q in before} == before
    assert restarted.status("c1")["consistent"]

    docs = restarted.documents("c1")
    velm = docs[docs["filename"] == "velm.docx"]["doc_id"].iloc[0]
    kept_ids = set(restarted.store.chunks("c1")["chunk_id"]) - set(
        restarted.store.chunks("c1").query("doc_id == @velm")["chunk_id"])
    assert restarted.delete_document("c1", velm) >= 1

    after = _fresh(restarted)
    assert after.status("c1") == {"index": len(kept_ids), "store": len(kept_ids), "missing": 0, "extra": 0,
                                  "consistent": True}
    assert {h.source for h in after.search("c1", "copper bells", k=10)} == {"orra.pdf", "kest.md"}
    assert _hits(after, "lighthouse 1822")[0] == before["lighthouse 1822"][0]  # same id, same score
    # new chunks never reuse the deleted ids
    after.add_files("c1", [("new.txt", b"A fresh note about the Velm bells.")])
    new_ids = set(after.store.chunks("c1")["chunk_id"]) - kept_ids
    assert new_ids and min(new_ids) > max(kept_ids | {0}) and not (new_ids & kept_ids)


def test_rebuild_restores_a_lost_index(retriever):
    retriever.add_files("c1", FILES)
    before = _hits(retriever, "lighthouse 1822")
    path = retriever.index_file("c1").path
    path.write_bytes(b"not a faiss index")
    index_mod._READ_CACHE.clear()
    with pytest.raises(RetrievalError, match="Rebuild"):
        retriever.search("c1", "lighthouse 1822")
    path.unlink()
    assert retriever.status("c1")["consistent"] is False
    assert retriever.rebuild("c1") == retriever.status("c1")["store"]
    assert _same(_hits(_fresh(retriever), "lighthouse 1822"), before)


def test_index_file_is_replaced_atomically(retriever):
    retriever.add_files("c1", FILES[:1])
    path = retriever.index_file("c1").path
    # Hold the old file open: its inode then stays allocated, so the filesystem cannot hand the same
    # number to a later temp file (it did once in CI when add_files saved twice), and the check means
    # what it says: the old file was unlinked whole, never rewritten in place.
    with open(path, "rb") as old:
        before = old.read()
        retriever.add_files("c1", FILES[1:])
        gone = os.fstat(old.fileno())
        assert gone.st_nlink == 0  # renamed over, not truncated and rewritten
        assert path.stat().st_ino != gone.st_ino
        old.seek(0)
        assert old.read() == before  # a reader holding the old index still sees all of it
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_collections_are_separate_and_names_checked(retriever):
    retriever.add_files("c1", FILES[:1])
    retriever.add_files("c2", FILES[2:])
    assert {"c1", "c2"} <= set(retriever.list_collections())
    assert {h.source for h in retriever.search("c2", "lighthouse", k=5)} == {"kest.md"}
    for bad in ("../etc", "a/b", "", "x" * 65):
        with pytest.raises(RetrievalError, match="not allowed"):
            retriever.create_collection(bad)
    with pytest.raises(RetrievalError, match="no collection"):
        retriever.search("missing", "anything")
    retriever.drop_collection("c2")
    assert "c2" not in retriever.list_collections() and not retriever.index_file("c2").path.exists()


def test_orphan_index_ids_are_skipped(any_retriever):
    retriever = any_retriever
    """An id left in the index after its rows went (crash between the two writes) is never shown."""
    retriever.add_files("c1", FILES)
    docs = retriever.documents("c1")
    orra = docs[docs["filename"] == "orra.pdf"]["doc_id"].iloc[0]
    retriever.store.delete_document("c1", orra)  # store only, as if the index write never happened
    hits = retriever.search("c1", "lighthouse 1822", k=3)
    assert hits and all(h.source != "orra.pdf" for h in hits) and [h.rank for h in hits] == [1, 2, 3][: len(hits)]


def test_same_file_from_two_sessions_at_once_goes_in_once(retriever):
    import threading

    other = Retriever(retriever.store, data_dir=retriever.data_dir, embedder=retriever.embedder)
    retriever.create_collection("c1")
    reports = []
    threads = [threading.Thread(target=lambda r=r: reports.append(r.add_files("c1", FILES[:1])))
               for r in (retriever, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kinds = sorted(str(rep.files[0].error_kind) for rep in reports)
    assert kinds == ["None", "duplicate"]
    assert len(retriever.documents("c1")) == 1 and retriever.status("c1")["consistent"]
