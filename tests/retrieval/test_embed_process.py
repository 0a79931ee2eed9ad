"""The dashboard's embedder process: the same vectors as the in-process embedder, progress and stop between
requests, a fresh start after the worker dies, nothing left running after close."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from retrieval.embed_process import REQUEST_TEXTS, EmbedderProcess
from retrieval.errors import IngestCancelled


@pytest.fixture(scope="module")
def proc():
    emb = EmbedderProcess("cpu")
    yield emb
    emb.close()


def test_same_vectors_as_the_embedder_in_this_process(proc, embedder):
    texts = ["Who built the lighthouse of Orra?", "Velm rings copper bells.", "x"]
    a, b = proc.encode(texts), embedder.encode(texts)
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(1).min() > 0.999  # the same model (bfloat16 on both sides where the CPU has it)
    assert proc.device == "cpu" and proc.dtype in ("float32", "bfloat16")


def test_progress_and_stop_between_requests(proc):
    texts = [f"note {i} about amber and salt" for i in range(REQUEST_TEXTS + 10)]
    seen = []
    assert proc.encode(texts, progress=lambda done, total: seen.append((done, total))).shape == (len(texts), 384)
    assert seen == [(REQUEST_TEXTS, len(texts)), (len(texts), len(texts))]
    with pytest.raises(IngestCancelled):
        proc.encode(texts, should_stop=lambda: True)


def test_a_worker_that_died_is_started_again_and_close_ends_it(proc):
    first = proc._proc.pid
    os.kill(first, signal.SIGKILL)
    proc._proc.wait(10)
    assert proc.encode(["still answers"]).shape == (1, 384) and proc._proc.pid != first
    other = EmbedderProcess("cpu")
    other.encode(["hello"])
    child = other._proc
    other.close()
    assert child.poll() is not None and other._proc is None
