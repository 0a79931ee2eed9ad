"""Collections of documents: ingest -> chunk -> embed -> FAISS, with chunk metadata in the store.

    r = Retriever(store)                      # store: `store.open_store()` (CONTRACTS.md) or a test double
    report = r.add_files("notes", [("a.pdf", b"..."), ("b.md", b"...")], on_file=cb)  # ingest.py
    r.recover("notes")                        # repairs what a crash left (recovery.py)
    hits = r.search("notes", "Where was Ada born?", k=5)   # -> [RetrievedChunk], best first
    r.delete_document("notes", doc_id); r.rebuild("notes"); r.list_collections()

Write order (crash safety, ingest.py): a document and its chunks in one store transaction, then the index
file. A crash in between leaves chunks the index lacks; `recover` (recovery.py, run when a collection is
opened) embeds exactly those. `status` compares the chunk ids of the index with the store's. Ids are never
reused, so an index id without a row (skipped by search) can never point at the wrong text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval import ingest, recovery
from retrieval.chunking import document_text
from retrieval.config import (
    EMBED_DIM,
    EMBEDDER_NAME,
    ChunkConfig,
    IngestLimits,
    check_collection_name,
    index_path,
)
from retrieval.errors import RetrievalError
from retrieval.index import IndexFile, ids_of, new_index
from retrieval.index import search as index_search
from retrieval.ingest import FileEvent, FileResult, IngestReport, Progress


@dataclass
class RetrievedChunk:
    chunk_id: int
    doc_id: str
    source: str  # file name
    page: int | None  # 1-based PDF page, None for other formats
    char_start: int
    char_end: int
    text: str
    score: float  # cosine similarity
    rank: int  # 1 = best


class Retriever:
    """`embedder`: an Embedder (tests, experiments); else `embedder_loader()` is called the first time one
    is needed (the page passes its st.cache_resource loader); else `embed.get_embedder()`. Listing and
    deleting never load it."""
    def __init__(self, store, data_dir: Path | None = None, embedder=None,
                 limits: IngestLimits | None = None, chunking: ChunkConfig | None = None,
                 embedder_loader: Callable[[], object] | None = None):
        self.store = store
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._embedder = embedder
        self._embedder_loader = embedder_loader
        self.limits = limits or IngestLimits()
        self.chunking = chunking or ChunkConfig()

    # --- collections -------------------------------------------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            if self._embedder_loader is not None:
                self._embedder = self._embedder_loader()
            else:
                from retrieval.embed import get_embedder

                self._embedder = get_embedder()
        return self._embedder

    def index_file(self, collection: str) -> IndexFile:
        return IndexFile(index_path(collection, self.data_dir), EMBED_DIM)

    def list_collections(self) -> list[str]:
        df = self.store.collections()
        return sorted(df["name"].tolist()) if len(df) else []

    def create_collection(self, name: str) -> None:
        check_collection_name(name)
        if name not in self.list_collections():
            self.store.add_collection(name, EMBEDDER_NAME, EMBED_DIM)

    def drop_collection(self, name: str) -> None:
        idx = self.index_file(name)
        with idx.locked():
            self.store.drop_collection(name)
            idx.delete()

    def _require(self, collection: str) -> None:
        check_collection_name(collection)
        df = self.store.collections()
        row = df[df["name"] == collection] if len(df) else df
        if not len(row):
            raise RetrievalError(f"There is no collection named {collection!r}. Create it first or pick another.")
        if "embedder" in row and row["embedder"].iloc[0] != EMBEDDER_NAME:
            raise RetrievalError(
                f"Collection {collection!r} was built with {row['embedder'].iloc[0]}, not {EMBEDDER_NAME}. "
                "Create a new collection."
            )

    def documents(self, collection: str):
        """The store's documents of `collection` with an `n_chunks` column."""
        self._require(collection)
        return self._documents(collection)

    def _documents(self, collection: str):
        docs = self.store.documents(collection).copy()
        if "n_chunks" not in docs:  # the DuckDB store counts them itself
            ids = self.store.chunks(collection)["doc_id"]
            counts = ids.value_counts() if len(ids) else {}
            docs["n_chunks"] = [int(counts.get(d, 0)) for d in docs["doc_id"]] if len(docs) else []
        return docs

    def status(self, collection: str) -> dict:
        """Index vs store by chunk id: {"index": n, "store": n, "missing": n in the store only, "extra": n in the
        index only, "consistent": bool} (reads ids only, no text: cheap enough for every page view)."""
        self._require(collection)
        in_index = set(ids_of(self.index_file(collection).cached()).tolist())
        in_store = set(self.store.chunk_ids(collection))
        return {"index": len(in_index), "store": len(in_store), "missing": len(in_store - in_index),
                "extra": len(in_index - in_store), "consistent": in_index == in_store}

    # --- adding (retrieval/ingest.py) -----------------------------------------------------------
    def add_files(self, collection: str, files: Iterable[tuple[str, bytes]],
                  on_file: Callable[[FileEvent], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> IngestReport:
        """Ingest uploaded files; a bad file gets its error in the report and the others still go in. Each
        document is written whole or not at all; `should_stop` cancels (ingest.add_files)."""
        return ingest.add_files(self, collection, list(files), on_file=on_file, should_stop=should_stop)

    def add_texts(self, collection: str, documents: list[dict], progress: Progress | None = None) -> IngestReport:
        """Add already-extracted documents [{"doc_id", "title", "text"}] (toy-world corpora, experiments)."""
        return ingest.add_texts(self, collection, documents, progress)

    def recover(self, collection: str) -> list[str]:
        """Repair what a crash left (recovery.py); one sentence per repair, [] when nothing was wrong."""
        self._require(collection)
        return recovery.recover(self, collection)

    # --- deleting / rebuilding -----------------------------------------------------------------
    def delete_document(self, collection: str, doc_id: str) -> int:
        """Remove a document's chunks from the store and the index; returns how many chunks went."""
        self._require(collection)
        idx = self.index_file(collection)
        with idx.locked():
            ids = [int(i) for i in self.store.delete_document(collection, doc_id)]
            index = idx.load()
            if ids:
                index.remove_ids(np.asarray(ids, dtype=np.int64))
            idx.save(index)
        return len(ids)

    def rebuild(self, collection: str, progress: Progress | None = None) -> int:
        """Re-embed every chunk of the store into a fresh index (after a crash or a corrupt file)."""

        self._require(collection)
        idx = self.index_file(collection)
        with idx.locked():  # nothing is committed meanwhile, so the new index matches the store
            chunks = self.store.chunks(collection)
            vectors = self.embedder.encode(
                chunks["text"].tolist(),
                progress=(lambda done, total: progress("embed", done, total)) if progress else None,
            ) if len(chunks) else np.zeros((0, EMBED_DIM), np.float32)
            index = new_index(EMBED_DIM)
            if len(chunks):
                index.add_with_ids(vectors, chunks["chunk_id"].to_numpy(dtype=np.int64))
            idx.save(index)
        return len(chunks)

    # --- searching -----------------------------------------------------------------------------
    def search(self, collection: str, query: str, k: int = 5) -> list[RetrievedChunk]:
        return self.search_many(collection, [query], k)[0]

    def search_many(self, collection: str, queries: list[str], k: int = 5) -> list[list[RetrievedChunk]]:
        """Top-k chunks per query, best first (batched: one embedding call, one FAISS search)."""
        self._require(collection)
        if not queries:
            return []
        if any(not q.strip() for q in queries):
            raise RetrievalError("The question is empty. Type a question to search the documents.")
        index = self.index_file(collection).cached()
        if index.ntotal == 0:
            return [[] for _ in queries]
        qv = self.embedder.encode(queries)
        scores, ids = index_search(index, qv, k + 8)  # a few spare in case of ids without rows
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        meta = self.store.chunks(collection, wanted)
        rows = {int(r["chunk_id"]): r for r in meta.to_dict("records")}
        out = []
        for srow, irow in zip(scores, ids, strict=True):
            hits = []
            for s, i in zip(srow, irow, strict=True):
                r = rows.get(int(i))
                if i < 0 or r is None:
                    continue
                page = r.get("page")
                hits.append(RetrievedChunk(
                    int(i), str(r["doc_id"]), str(r["source"]), None if _isnull(page) else int(page),
                    int(r["char_start"]), int(r["char_end"]), str(r["text"]), float(s), len(hits) + 1,
                ))
                if len(hits) == k:
                    break
            out.append(hits)
        return out


def _isnull(v) -> bool:
    import pandas as pd

    return v is None or bool(pd.isna(v))


__all__ = ["Retriever", "RetrievedChunk", "FileResult", "FileEvent", "IngestReport", "document_text"]
