"""The store's retrieval-table API (CONTRACTS.md) in memory: ephemeral collections.

For experiments and tests that need a throw-away collection (e.g. a toy-world corpus indexed for one
evaluation run) without writing documents into the user's DuckDB store, and for machines without duckdb:

    r = Retriever(MemoryStore(), data_dir=tmp_dir)   # the FAISS file still goes to tmp_dir/indexes/
"""

from __future__ import annotations

import pandas as pd

from store.errors import DuplicateDocumentError  # errors only: no duckdb


class MemoryStore:
    """Collections, documents and chunks in dicts (one process, not persistent, not thread-safe)."""

    def __init__(self):
        self._collections: dict[str, dict] = {}
        self._docs: dict[str, list[dict]] = {}
        self._chunks: dict[str, list[dict]] = {}
        self._next: dict[str, int] = {}

    def add_collection(self, name, embedder, dim):
        self._collections.setdefault(name, {"name": name, "embedder": embedder, "dim": dim})
        self._docs.setdefault(name, [])
        self._chunks.setdefault(name, [])
        self._next.setdefault(name, 1)

    def collections(self):
        return pd.DataFrame(list(self._collections.values()), columns=["name", "embedder", "dim"])

    def drop_collection(self, name):
        for d in (self._collections, self._docs, self._chunks):
            d.pop(name, None)

    def add_document(self, collection, doc_id, filename, n_pages, n_chars, sha256, meta, chunks=None):
        """The document with its chunks (one step, like the store's single transaction); chunks without a
        chunk_id get the next free ids. Returns the chunk ids."""
        if any(d["doc_id"] == doc_id for d in self._docs[collection]):
            raise DuplicateDocumentError(f"The document {doc_id!r} ({filename}) is already in collection "
                                         f"{collection!r}; delete it first to replace it.")
        rows = []
        for c in chunks or []:
            if c.get("chunk_id") is None:
                c = {**c, "chunk_id": self._next[collection]}
                self._next[collection] += 1
            rows.append(c)
        self._docs[collection].append(dict(doc_id=doc_id, filename=filename, n_pages=n_pages, n_chars=n_chars,
                                           sha256=sha256, meta=meta))
        self.add_chunks(collection, rows)
        return [int(r["chunk_id"]) for r in rows]

    def add_chunks(self, collection, rows):
        self._chunks[collection].extend(dict(r) for r in rows)
        if rows:
            self._next[collection] = max(self._next[collection], max(r["chunk_id"] for r in rows) + 1)
        return len(rows)

    def documents(self, collection):
        return pd.DataFrame(self._docs.get(collection, []),
                            columns=["doc_id", "filename", "n_pages", "n_chars", "sha256", "meta"])

    def chunks(self, collection, chunk_ids=None):
        rows = self._chunks.get(collection, [])
        if chunk_ids is not None:
            wanted = set(int(i) for i in chunk_ids)
            rows = [r for r in rows if r["chunk_id"] in wanted]
        return pd.DataFrame(rows, columns=["chunk_id", "doc_id", "source", "page", "char_start", "char_end", "text"])

    def chunk_ids(self, collection):
        return sorted(int(r["chunk_id"]) for r in self._chunks.get(collection, []))

    def delete_document(self, collection, doc_id):
        gone = [r["chunk_id"] for r in self._chunks[collection] if r["doc_id"] == doc_id]
        self._chunks[collection] = [r for r in self._chunks[collection] if r["doc_id"] != doc_id]
        self._docs[collection] = [d for d in self._docs[collection] if d["doc_id"] != doc_id]
        return gone

    def next_chunk_id(self, collection):
        return self._next[collection]
