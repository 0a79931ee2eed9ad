"""A searching client while another ingests: the upload runs as a background job in its own process (the real
`python -m backend rag ingest-job`, real embedder, one core left free) and the dashboard embeds queries in a
process of its own with one thread (retrieval/embed_process.py), so a search waits behind nothing;
its latency stays within 2x of idle. Then the upload is cancelled: nothing of the document it was embedding is
kept, and the collection is consistent.

Idle and busy are measured in alternation while the job exists (the worker paused with SIGSTOP, then running
again), so a change in what else the machine runs meanwhile (CI neighbours) lands on both sides alike."""

from __future__ import annotations

import os
import signal
import statistics
import time

from backend.rag import start_ingest
from retrieval import jobs
from retrieval.embed_process import EmbedderProcess
from retrieval.service import Retriever
from store import open_store

QUERIES = ["Who built the lighthouse?", "Which town rings copper bells?", "What does the mill grind?",
           "Where is the harbour?", "When was the bridge painted?"]
SMALL = [("orra.md", b"The lighthouse of Orra was built in 1822 by Mira Kest."),
         ("velm.md", b"Velm is a river town famous for its copper bells."),
         ("kest.md", b"The windmill at Kest grinds barley for the whole valley.")]


def _big_document() -> bytes:
    return "\n\n".join(f"Section {i}. " + " ".join(f"the harbour ledger {i} notes cargo item {j} of amber and salt"
                                                   for j in range(25)) for i in range(800)).encode()


def _latencies(r: Retriever, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        r.search("c", QUERIES[i % len(QUERIES)], 3)
        out.append(time.perf_counter() - t)
    return out


def _wait(job, predicate, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = jobs.read_status(job)
        if predicate(status):
            return status
        assert status["state"] in ("queued", "running"), status  # ended before it got there
        time.sleep(0.5)
    raise AssertionError(f"the job did not get there in {timeout_s} s: {jobs.read_status(job)}")


def test_search_latency_during_a_background_ingest_stays_within_2x_idle(tmp_path):
    db, data = tmp_path / "arena.duckdb", tmp_path / "data"
    r = Retriever(open_store(db), data_dir=data, embedder=EmbedderProcess("cpu"))  # the dashboard's embedder
    r.add_files("c", SMALL)
    _latencies(r, 3)  # warm: the first searches load caches

    job = start_ingest("c", [("ledger.md", _big_document())], db_path=db, data_dir=data, device="cpu")
    idle, busy = [], []
    try:
        pid = _wait(job, lambda s: s["state"] == "running" and s["chunks_done"] > 0, 300)["pid"]  # embedding
        for _ in range(8):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)
            idle += _latencies(r, 3)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.3)
            busy += _latencies(r, 3)
        during = jobs.read_status(job)
        assert during["state"] == "running" and during["chunks_done"] < during["chunks_total"], during
    finally:
        jobs.request_cancel(job)
    final = _wait(job, lambda s: s["state"] not in ("queued", "running"), 300)

    idle_ms = statistics.median(idle) * 1e3
    busy_ms = statistics.median(busy) * 1e3
    print(f"search latency: idle median {idle_ms:.1f} ms, during the ingest {busy_ms:.1f} ms "
          f"(the job embedded {during['chunks_done']} of {during['chunks_total']} chunks meanwhile)")
    assert busy_ms <= 2 * idle_ms, (busy_ms, idle_ms)
    assert final["state"] == "cancelled" and final["files"][0]["state"] == "cancelled"
    assert sorted(r.documents("c")["filename"]) == ["kest.md", "orra.md", "velm.md"]  # nothing half-done
    assert r.status("c")["consistent"]
    r.embedder.close()
