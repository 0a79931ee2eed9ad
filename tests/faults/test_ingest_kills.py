"""SIGKILL during an ingest, at a random point, 20 times: no document without chunks, the index never ahead of
the store, and after the next open (integrity check, then recovery) the index matches the store and every file
can be uploaded again (a file whose document was not committed is not refused as a duplicate)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval import jobs
from retrieval.service import Retriever
from store import open_store
from tests.retrieval.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 8
RUNS = 20
KILL_WINDOW_S = 3.0  # about how long the worker's ingest takes on the 2-core CI box, after it starts


def _docs(seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [(f"doc{i}.md", "\n\n".join(f"Doc {i} paragraph {p}: " + " ".join(f"w{i}-{p}-{j}" for j in range(80))
                                       for p in range(rng.randint(2, 9))).encode()) for i in range(N_DOCS)]


def _wait_running(job: Path, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((job / "status.json").read_text())["state"] != "queued":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)


@pytest.mark.parametrize("seed", range(RUNS))
def test_sigkill_during_ingest_leaves_whole_documents_and_a_repairable_index(tmp_path, seed):
    db, data = tmp_path / "arena.duckdb", tmp_path / "data"
    docs = _docs(seed)
    job = jobs.create_job("c", docs, root=data)
    code = f"from tests.faults.workers import ingest_job; ingest_job({str(db)!r}, {str(data)!r}, {str(job)!r}, 0.03)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _wait_running(job, proc)
    time.sleep(random.Random(1000 + seed).uniform(0.0, KILL_WINDOW_S))
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert killed or proc.returncode == 0, proc.stderr.read().decode()[-3000:]

    store = open_store(db)  # the integrity check must not take a killed checkpoint for damage
    r = Retriever(store, data_dir=data, embedder=HashEmbedder())
    if "c" in r.list_collections():
        before = r.documents("c")
        assert (before["n_chunks"] > 0).all(), before[["filename", "n_chunks"]]  # never a document without chunks
        assert r.status("c")["extra"] == 0  # the index is never ahead of the store
        r.recover("c")
        status = r.status("c")
        assert status["consistent"], status
        # killed after it wrote "done" (the kill landed while the process was exiting) is a true status too
        assert jobs.read_status(job)["state"] in (("stopped", "running", "done") if killed else ("done",))
    report = r.add_files("c", docs)  # the user uploads everything again
    kinds = {f.filename: f.error_kind for f in report.files}
    assert set(kinds.values()) <= {None, "duplicate"}, kinds
    final = r.documents("c")
    assert sorted(final["filename"]) == sorted(name for name, _ in docs) and (final["n_chunks"] > 0).all()
    assert r.status("c")["consistent"]
