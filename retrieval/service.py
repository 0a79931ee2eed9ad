"""Collections of documents: ingest -> chunk -> embed -> FAISS, with chunk metadata in the store.

    r = Retriever(store)                      # store: `store.open_store()` (CONTRACTS.md) or a test double
    report = r.add_files("notes", [("a.pdf", b"..."), ("b.md", b"...")], progress=cb)
    hits = r.search("notes", "Where was Ada born?", k=5)   # -> [RetrievedChunk], best first
    r.delete_document("notes", doc_id); r.rebuild("notes"); r.list_collections()

Write order (crash safety): store rows first, then the index file. A crash in between leaves chunks the
index lacks (found by `status`, fixed by `rebuild`) or index ids without rows (skipped by search);
ids are never reused, so neither can point at the wrong text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.chunking import Chunk, chunk_document, document_text
from retrieval.config import (
    EMBED_DIM,
    EMBEDDER_NAME,
    ChunkConfig,
    IngestLimits,
    check_collection_name,
    index_path,
)
from retrieval.errors import IngestError, RetrievalError
from retrieval.index import IndexFile, ids_of, new_index
from retrieval.index import search as index_search
from retrieval.parse import ParsedDocument
from retrieval.sandbox import parse_isolated
from retrieval.sniff import sniff

# progress(stage, done, total); stage is "parse" | "embed" | "index"
Progress = Callable[[str, int, int], None]


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


@dataclass
class FileResult:
    filename: str
    doc_id: str | None = None
    n_chunks: int = 0
    n_pages: int | None = None
    n_chars: int = 0
    error: str | None = None  # a sentence for the user
    error_kind: str | None = None  # one of errors.INGEST_ERROR_KINDS


@dataclass
class IngestReport:
    collection: str
    files: list[FileResult] = field(default_factory=list)

    @property
    def added(self) -> list[FileResult]:
        return [f for f in self.files if f.error is None]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]


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

    def _index(self, collection: str) -> IndexFile:
        return IndexFile(index_path(collection, self.data_dir), EMBED_DIM)

    def list_collections(self) -> list[str]:
        df = self.store.collections()
        return sorted(df["name"].tolist()) if len(df) else []

    def create_collection(self, name: str) -> None:
        check_collection_name(name)
        if name not in self.list_collections():
            self.store.add_collection(name, EMBEDDER_NAME, EMBED_DIM)

    def drop_collection(self, name: str) -> None:
        idx = self._index(name)
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

    def status(self, collection: str, full: bool = False) -> dict:
        """Index vs store: {"index": n, "store": n, "consistent": bool}. Counts only (cheap, for every page
        view) unless `full`, which compares the id sets (reads every chunk id)."""
        self._require(collection)
        index = self._index(collection).cached()
        if not full:
            n_store = int(self._documents(collection)["n_chunks"].sum())
            return {"index": int(index.ntotal), "store": n_store, "consistent": int(index.ntotal) == n_store}
        in_index = set(ids_of(index).tolist())
        in_store = set(int(i) for i in self.store.chunks(collection)["chunk_id"].tolist())
        return {"index": len(in_index), "store": len(in_store), "consistent": in_index == in_store}

    # --- adding --------------------------------------------------------------------------------
    def add_files(self, collection: str, files: Iterable[tuple[str, bytes]],
                  progress: Progress | None = None) -> IngestReport:
        """Ingest uploaded files; a bad file gets its error in the report and the others still go in."""
        self.create_collection(collection)
        files = list(files)
        report = IngestReport(collection, [FileResult(name) for name, _ in files])
        existing = set(self.store.documents(collection)["doc_id"].tolist())
        todo: list[tuple[int, str, str, bytes]] = []  # (report index, doc_id, kind, data)
        for i, (name, data) in enumerate(files):
            try:
                kind = sniff(name, data, self.limits)
                doc_id = hashlib.sha256(data).hexdigest()[:16]
                if doc_id in existing:
                    raise IngestError("duplicate", name, f"{name} is already in collection {collection!r}; skipped.")
                existing.add(doc_id)
                report.files[i].doc_id = doc_id
                todo.append((i, doc_id, kind, data))
            except IngestError as e:
                _fail(report.files[i], e)
        if progress:
            progress("parse", 0, len(todo))
        parsed = parse_isolated(
            [(files[i][0], kind, data) for i, _, kind, data in todo], self.limits,
            on_file=(lambda j: progress("parse", j + 1, len(todo))) if progress else None,
        )
        docs: list[tuple[FileResult, ParsedDocument, list[Chunk], str]] = []
        for (i, doc_id, _, data), res in zip(todo, parsed, strict=True):
            if isinstance(res, IngestError):
                _fail(report.files[i], res)
                continue
            fr = report.files[i]
            fr.n_pages, fr.n_chars = res.n_pages, res.n_chars
            docs.append((fr, res, chunk_document(res, self.chunking), hashlib.sha256(data).hexdigest()))
        self._add(collection, docs, progress)
        return report

    def add_texts(self, collection: str, documents: list[dict], progress: Progress | None = None) -> IngestReport:
        """Add already-extracted documents [{"doc_id", "title", "text"}] (toy-world corpora, experiments)."""
        self.create_collection(collection)
        report = IngestReport(collection)
        docs = []
        for d in documents:
            fr = FileResult(d.get("title") or d["doc_id"], doc_id=str(d["doc_id"]))
            report.files.append(fr)
            parsed = ParsedDocument(fr.filename, "text", [(None, d["text"])])
            fr.n_chars = parsed.n_chars
            docs.append((fr, parsed, chunk_document(parsed, self.chunking),
                         hashlib.sha256(d["text"].encode()).hexdigest()))
        self._add(collection, docs, progress)
        return report

    def _add(self, collection, docs, progress: Progress | None) -> None:
        for fr, _, chunks, _ in docs:
            if not chunks:
                _fail(fr, IngestError("no_text", fr.filename, f"{fr.filename} contains no extractable text."))
        docs = [d for d in docs if d[2]]
        if not docs:
            return
        spans, start = [], 0
        for _, _, chunks, _ in docs:
            spans.append((start, start + len(chunks)))
            start += len(chunks)
        vectors = self.embedder.encode(
            [c.text for _, _, chunks, _ in docs for c in chunks],
            progress=(lambda done, total: progress("embed", done, total)) if progress else None,
        )
        idx = self._index(collection)
        with idx.locked():
            # checked again under the lock: another session may have added the same file meanwhile
            present = set(self.store.documents(collection)["doc_id"].astype(str))
            keep = []
            for doc, span in zip(docs, spans, strict=True):
                fr = doc[0]
                if fr.doc_id in present:
                    _fail(fr, IngestError("duplicate", fr.filename,
                                          f"{fr.filename} is already in collection {collection!r}; skipped."))
                    continue
                present.add(fr.doc_id)
                keep.append((doc, span))
            if not keep:
                return
            index = idx.load()
            n_new = sum(b - a for _, (a, b) in keep)
            if hasattr(self.store, "reserve_chunk_ids"):  # atomic in the store (also across processes)
                next_id = int(self.store.reserve_chunk_ids(collection, n_new))
            else:
                next_id = int(self.store.next_chunk_id(collection))
            all_ids = []
            for (fr, parsed, chunks, sha), _ in keep:
                ids = list(range(next_id, next_id + len(chunks)))
                next_id += len(chunks)
                self.store.add_document(collection, fr.doc_id, fr.filename, parsed.n_pages, parsed.n_chars, sha,
                                        {"kind": parsed.kind})
                self.store.add_chunks(collection, [
                    {"chunk_id": cid, "doc_id": fr.doc_id, "source": fr.filename, "page": c.page,
                     "char_start": c.char_start, "char_end": c.char_end, "text": c.text}
                    for cid, c in zip(ids, chunks, strict=True)
                ])
                fr.n_chunks = len(chunks)
                all_ids += ids
            rows = np.concatenate([vectors[a:b] for _, (a, b) in keep])
            index.add_with_ids(rows, np.asarray(all_ids, dtype=np.int64))
            idx.save(index)
        if progress:
            progress("index", n_new, n_new)

    # --- deleting / rebuilding -----------------------------------------------------------------
    def delete_document(self, collection: str, doc_id: str) -> int:
        """Remove a document's chunks from the store and the index; returns how many chunks went."""
        self._require(collection)
        idx = self._index(collection)
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
        chunks = self.store.chunks(collection)
        vectors = self.embedder.encode(
            chunks["text"].tolist(),
            progress=(lambda done, total: progress("embed", done, total)) if progress else None,
        ) if len(chunks) else np.zeros((0, EMBED_DIM), np.float32)
        idx = self._index(collection)
        with idx.locked():
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
        index = self._index(collection).cached()
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


def _fail(fr: FileResult, e: IngestError) -> None:
    fr.error, fr.error_kind, fr.n_chunks = str(e), e.kind, 0


__all__ = ["Retriever", "RetrievedChunk", "FileResult", "IngestReport", "document_text"]
