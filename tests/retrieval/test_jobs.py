"""Background ingest jobs (retrieval/jobs.py) and the ingest path under them (retrieval/ingest.py): per-file
progress with rates and ETA, cancel that keeps nothing half-done, per-upload caps, atomic documents, recovery."""

from __future__ import annotations

import json

import pytest

from retrieval import jobs
from retrieval.config import IngestLimits
from retrieval.errors import RetrievalError
from retrieval.service import Retriever
from tests.retrieval.fakes import HashEmbedder


def _text(n_paragraphs: int, tag: str) -> bytes:
    return "\n\n".join(f"{tag} paragraph {i}: " + " ".join(f"word{tag}{i}x{j}" for j in range(60))
                       for i in range(n_paragraphs)).encode()


FILES = [("a.md", _text(40, "a")), ("bad.pdf", b"%PDF-1.7 garbage"), ("b.txt", _text(30, "b"))]


@pytest.fixture
def fake_retriever(any_store, tmp_path):
    return Retriever(any_store, data_dir=tmp_path / "data", embedder=HashEmbedder())


def test_a_job_reports_every_file_with_chunks_rate_and_eta(fake_retriever, tmp_path):
    job = jobs.create_job("notes", FILES, root=tmp_path / "data")
    assert jobs.read_status(job)["state"] == "queued"
    snapshots = []
    fake_retriever.embedder.seconds_per_batch = 0.02
    original = jobs._write_json

    def spy(path, obj):
        if path.name == "status.json":
            snapshots.append(json.loads(json.dumps(obj)))
        original(path, obj)

    jobs._write_json = spy
    try:
        final = jobs.run_job(job, fake_retriever, nice=0)
    finally:
        jobs._write_json = original
    assert final["state"] == "done"
    states = {f["name"]: f["state"] for f in final["files"]}
    assert states == {"a.md": "added", "bad.pdf": "failed", "b.txt": "added"}
    bad = next(f for f in final["files"] if f["name"] == "bad.pdf")
    assert "could not be read as a PDF" in bad["error"]
    docs = fake_retriever.documents("notes")
    assert sorted(docs["filename"]) == ["a.md", "b.txt"]
    total = int(docs["n_chunks"].sum())
    assert final["chunks_done"] == final["chunks_total"] == total
    running = [s for s in snapshots if s["state"] == "running" and s["chunks_done"]]
    assert running and all(s["chunks_total"] == total for s in running)  # every file chunked before embedding
    assert any(s["rate"] and s["eta_s"] is not None and 0 < s["chunks_done"] < total for s in running)
    assert not (job / "files").exists()  # the staged bytes are gone
    assert jobs.read_status(job)["state"] == "done" and fake_retriever.status("notes")["consistent"]


def test_cancel_keeps_whole_documents_only(fake_retriever, tmp_path):
    job = jobs.create_job("notes", [("a.md", _text(40, "a")), ("b.md", _text(200, "b")), ("c.md", _text(5, "c"))],
                          root=tmp_path / "data")
    emb = fake_retriever.embedder
    original = emb.encode

    def encode(texts, batch_size=32, progress=None, should_stop=None):
        if emb.batches >= 3:  # a.md is done (2 batches); b.md is cancelled mid-way
            jobs.request_cancel(job)
        return original(texts, batch_size, progress, should_stop)

    emb.encode = encode
    status = jobs.run_job(job, fake_retriever, nice=0)
    assert status["state"] == "cancelled"
    assert [f["state"] for f in status["files"]] == ["added", "cancelled", "cancelled"]
    docs = fake_retriever.documents("notes")
    assert list(docs["filename"]) == ["a.md"] and (docs["n_chunks"] > 0).all()
    assert fake_retriever.status("notes")["consistent"]
    # b.md was not half-added, so it can be uploaded again (not refused as a duplicate)
    report = fake_retriever.add_files("notes", [("b.md", _text(200, "b"))])
    assert report.added and not report.failed


@pytest.mark.parametrize("files, message", [
    ([(f"n{i}.md", b"x") for i in range(21)], "This upload has 21 files; at most 20 go in one upload."),
    ([("a.md", b"x" * (40 * 2**20)), ("b.md", b"x" * (30 * 2**20))],
     "These files are 70 MiB together, over the 64 MiB limit of one upload."),
    ([], "No file was chosen."),
])
def test_an_upload_over_the_caps_is_refused_before_anything_is_staged(tmp_path, files, message):
    with pytest.raises(RetrievalError, match=message):
        jobs.create_job("notes", files, root=tmp_path)
    assert jobs.list_jobs(tmp_path) == []


def test_bad_collection_names_are_refused_before_staging(tmp_path):
    with pytest.raises(RetrievalError, match="not allowed"):
        jobs.create_job("../x", [("a.md", b"hi")], root=tmp_path)
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_a_worker_that_died_reads_as_stopped(tmp_path):
    job = jobs.create_job("notes", [("a.md", b"hello there")], root=tmp_path)
    status = json.loads((job / "status.json").read_text())
    status.update(state="running", pid=2**22 + 12345, started=1.0)  # no such process
    (job / "status.json").write_text(json.dumps(status))
    read = jobs.read_status(job)
    assert read["state"] == "stopped" and "stopped unexpectedly" in read["error"]


def test_the_caps_of_one_upload_are_limits_not_constants():
    limits = IngestLimits(max_files_per_upload=2)
    from retrieval.ingest import check_upload

    with pytest.raises(RetrievalError, match="at most 2 go in one upload"):
        check_upload([("a", 1), ("b", 1), ("c", 1)], limits)
