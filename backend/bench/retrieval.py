"""Benchmark of the retrieval path: `python -m backend retrieval-bench [--docs 200] [--queries 100] [--device cpu]`.

Measures on a generated corpus (toy world's RAG set when available): parsing in the parser process (a
PDF of --pdf-pages pages), chunking + embedding throughput, index build, search latency (batched and one
query at a time, median/p90), and recall@5 / MRR. Human-readable lines first; the last stdout line is one
JSON record.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

from backend.toyworld import rag_corpus
from retrieval.config import IngestLimits
from retrieval.embed import get_embedder
from retrieval.evaluate import index_corpus, retrieval_metrics, retrieve
from retrieval.memory_store import MemoryStore
from retrieval.sandbox import parse_isolated
from retrieval.service import Retriever
from retrieval.testdata import make_text_pdf


def _corpus(n: int, seed: int):
    return rag_corpus(seed=seed, n_entities=n)


def run(args: argparse.Namespace) -> dict:

    rec: dict = {"bench": "retrieval", "host_cpu": platform.processor() or platform.machine()}
    t = time.perf_counter()
    emb = get_embedder(args.device)
    rec.update(device=emb.device, embedder=emb.name, embedder_load_s=round(time.perf_counter() - t, 2))

    corpus = _corpus(args.docs, args.seed)
    docs, questions = corpus["documents"], corpus["questions"][: args.queries]
    pdf = make_text_pdf([d["text"] for d in docs[: args.pdf_pages]])
    t = time.perf_counter()
    [parsed] = parse_isolated([("bench.pdf", "pdf", pdf)], IngestLimits())
    rec["pdf_pages"] = args.pdf_pages
    rec["pdf_parse_s"] = round(time.perf_counter() - t, 3)  # includes starting the parser process
    assert not isinstance(parsed, Exception), parsed
    rec["pdf_chars"] = parsed.n_chars

    with tempfile.TemporaryDirectory() as tmp:
        r = Retriever(MemoryStore(), data_dir=tmp, embedder=emb)
        t = time.perf_counter()
        report = index_corpus(r, "bench", docs)
        dt = time.perf_counter() - t
        n_chunks = sum(f.n_chunks for f in report.files)
        rec.update(docs=len(docs), chunks=n_chunks, ingest_s=round(dt, 2), ingest_chunks_per_s=round(n_chunks / dt, 1))
        t = time.perf_counter()
        rows = retrieve(r, "bench", questions, k=5)
        dt = time.perf_counter() - t
        rec.update(queries=len(questions), batched_search_ms_per_query=round(1e3 * dt / len(questions), 2))
        single = []
        for q in questions[:30]:
            t = time.perf_counter()
            r.search("bench", q["question"], 5)
            single.append(1e3 * (time.perf_counter() - t))
        rec["search_ms_p50"] = round(statistics.median(single), 2)
        rec["search_ms_p90"] = round(statistics.quantiles(single, n=10)[-1], 2)
        rec.update({k: round(v, 4) if isinstance(v, float) else v for k, v in retrieval_metrics(rows, (1, 5)).items()})
    for k, v in rec.items():
        print(f"{k:>28}: {v}")
    print(json.dumps(rec))
    return rec
