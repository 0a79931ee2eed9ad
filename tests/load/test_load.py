"""Load test of the served dashboard: 8 browser-less clients (tests/load/stclient.py: Streamlit's own WebSocket
protocol) against one `streamlit run app.py` for 2 minutes, each alternating a RAG question (retrieval + two
models answering, recorded) and an Arena generation (two models, recorded), on the real bundled models and the
real embedder. Passes when no request failed and every run a client was told about is in the store, completed.

It takes minutes, so it runs only when asked:

    SSM_ARENA_LOAD_TEST=1 .venv/bin/python -m pytest tests/load -s

Prints (and writes to artifacts/load_test.json) requests, p50 / p95 latency per kind, errors and the server's
memory; SSM_ARENA_LOAD_CLIENTS / SSM_ARENA_LOAD_SECONDS change the 8 clients / 120 s. By default the clients
arrive at a cold server, so their first requests load the models at the same time (which is what the first
visitors of a fresh dashboard do); SSM_ARENA_LOAD_WARMUP=1 lets one client generate once, alone, before the
eight start (the models are then loaded), to measure the rest of the path on its own.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import threading
import time

import psutil
import pytest

from tests.load.serve import ROOT, serve
from tests.load.stclient import Client

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("SSM_ARENA_LOAD_TEST"),
                                                   reason="minutes long: set SSM_ARENA_LOAD_TEST=1 to run it")]
CLIENTS = int(os.environ.get("SSM_ARENA_LOAD_CLIENTS", "8"))
WARMUP = os.environ.get("SSM_ARENA_LOAD_WARMUP", "") == "1"
SECONDS = float(os.environ.get("SSM_ARENA_LOAD_SECONDS", "120"))
REQUEST_TIMEOUT_S = 600  # per request: on a loaded 2-core box 8 clients queue for the CPU
SAVED = re.compile(r"Saved as run ([0-9a-f]{32})")
DOCS = [("orra.md", b"The lighthouse of Orra was built in 1822 by Mira Kest. It is painted white."),
        ("velm.md", b"Velm is a river town famous for its copper bells and its bell foundry."),
        ("kest.md", b"The windmill at Kest grinds barley for the whole valley every autumn.")]
QUESTIONS = ["Who built the lighthouse of Orra?", "What is Velm famous for?", "What does the windmill grind?"]
MODELS = ["toy-mamba", "toy-transformer"]  # the bundled default pair (the real frontend sends its default)
PROMPTS = ["Once upon a time", "The river Velm flows", "Question: what is 12 plus 30? Answer:"]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _request(client: Client, kind: str, n: int) -> str:
    """One RAG question or Arena generation, followed to the end; returns the saved run id (raises on trouble)."""
    if kind == "rag":
        page = client.run("rag", {"rag_collection": "notes", "rag_question": QUESTIONS[n % 3], "rag_models": MODELS,
                                  "rag_max_new": 8.0}, click="rag_ask", timeout_s=REQUEST_TIMEOUT_S)
    else:
        page = client.run("arena", {"arena_prompt": PROMPTS[n % 3], "arena_models": MODELS, "arena_max_new": 8.0},
                          click="arena_generate", timeout_s=REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while True:
        if page.exceptions:
            raise RuntimeError(f"{kind}: {page.exceptions[0]}")
        for text in page.texts:
            if m := SAVED.search(text):
                return m.group(1)
            if "not saved" in text or text.startswith("The question is empty"):
                raise RuntimeError(f"{kind}: {text}")
        if not page.finished or time.monotonic() > deadline:
            raise RuntimeError(f"{kind}: no answer within {REQUEST_TIMEOUT_S} s; the page showed "
                               f"{[t for t in page.texts if not t.startswith('WIDGET')][-6:]}")
        time.sleep(0.5)  # the job still runs (or its last rerun is on the way): look again
        page = client.run(kind, timeout_s=REQUEST_TIMEOUT_S)


def _client_loop(url: str, index: int, end: float, out: list, lock: threading.Lock) -> None:
    try:
        client = Client(url)
        client.run("rag")
        client.run("arena")  # learn both pages' widget ids
    except Exception as e:  # noqa: BLE001 - reported as this client's error
        with lock:
            out.append({"client": index, "kind": "connect", "ok": False, "error": repr(e), "latency_s": None})
        return
    n = index
    try:
        while time.monotonic() < end:
            kind = "rag" if n % 2 == 0 else "arena"
            t0 = time.monotonic()
            try:
                run_id, error = _request(client, kind, n), None
            except Exception as e:  # noqa: BLE001 - counted, the client goes on
                run_id, error = None, str(e)
            with lock:
                out.append({"client": index, "kind": kind, "ok": error is None, "error": error, "run_id": run_id,
                            "latency_s": time.monotonic() - t0})
            n += 1
    finally:
        client.close()


def test_eight_clients_for_two_minutes(tmp_path):
    from retrieval import Retriever
    from store import open_store

    Retriever(open_store(tmp_path / "arena.duckdb"), data_dir=tmp_path / "data").add_files("notes", DOCS)
    with serve(tmp_path, fake=False) as (url, proc, log):
        server = psutil.Process(proc.pid)
        if WARMUP:
            first = Client(url)
            try:
                first.run("rag")
                first.run("arena")
                _request(first, "arena", 0)
            finally:
                first.close()
        rss_start = server.memory_info().rss
        results: list[dict] = []
        lock = threading.Lock()
        end = time.monotonic() + SECONDS
        threads = [threading.Thread(target=_client_loop, args=(url, i, end, results, lock)) for i in range(CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 2 * REQUEST_TIMEOUT_S)
        wall = time.monotonic() - t0
        rss_end = server.memory_info().rss
        log_text = log.read_text(errors="replace")
    store = open_store(tmp_path / "arena.duckdb")
    runs = store.runs().set_index("run_id")
    ok = [r for r in results if r["ok"]]
    lost = [r["run_id"] for r in ok if r["run_id"] not in runs.index or runs.loc[r["run_id"], "status"] != "completed"]
    ui_runs = runs[[isinstance(c, dict) and c.get("source") == "ui" for c in runs["config"]]]
    summary = {
        "clients": CLIENTS, "seconds": SECONDS, "warmup": WARMUP, "wall_s": round(wall, 1), "requests": len(results),
        "ok": len(ok), "errors": len(results) - len(ok), "error_samples": [r["error"] for r in results if
                                                                        not r["ok"]][:5],
        "runs_in_store_from_the_ui": len(ui_runs), "lost_runs": len(lost),
        "server_rss_mb": [round(rss_start / 2**20), round(rss_end / 2**20)],
        "tracebacks_in_server_log": log_text.count("Traceback"),
        "cpu": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
    }
    for kind in ("rag", "arena"):
        lat = [r["latency_s"] for r in ok if r["kind"] == kind]
        summary[kind] = {"requests": len([r for r in results if r["kind"] == kind]), "ok": len(lat),
                         "p50_s": round(statistics.median(lat), 2) if lat else None,
                         "p95_s": round(_percentile(lat, 0.95), 2) if lat else None,
                         "max_s": round(max(lat), 2) if lat else None}
    print(json.dumps(summary, indent=2))
    out = ROOT / "artifacts" / "load_test.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "requests": results}, indent=2))
    assert results and not summary["errors"], summary["error_samples"]
    assert not lost and len(ui_runs) == len(ok) + WARMUP, (lost, len(ui_runs), len(ok))
    assert summary["tracebacks_in_server_log"] == 0, log_text[-3000:]
