"""Child-process bodies of the fault suite (run with `python -c`, so SIGKILL hits a real, separate process)."""

from __future__ import annotations


def ingest_job(db: str, data: str, job: str, seconds_per_batch: float) -> None:
    """Run a staged upload job through the real ingest path (sniff, chunk, atomic commit, index save) with the
    fast stand-in embedder: the kill test is about what reaches the store and the index, not about vectors."""
    from retrieval import jobs
    from retrieval.service import Retriever
    from store import open_store
    from tests.retrieval.fakes import HashEmbedder

    retriever = Retriever(open_store(db, lock_timeout=60), data_dir=data, embedder=HashEmbedder(seconds_per_batch))
    jobs.run_job(job, retriever, nice=0)
