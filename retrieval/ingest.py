"""Adding documents to a collection: check -> parse -> chunk -> embed -> commit, one document at a time.

    report = add_files(retriever, "notes", [("a.pdf", b"..."), ...], on_file=cb, should_stop=stop)

1. The upload as a whole is checked against the limits (files per upload, bytes per upload): one sentence.
2. Every file is sniffed (type, size, zip bombs) and parsed (PDF / DOCX in the parser process) and chunked;
   a bad file gets its own sentence in the report and the others go on.
3. Then each document in turn: its chunks are embedded (batches; `should_stop` is asked between them), then,
   under the collection's index lock, the document and its chunks are written in ONE store transaction and
   only then its vectors are added to the index file (saved atomically). A crash before the commit leaves
   nothing of the document; a crash after it leaves the index behind the store, which `recovery.recover`
   repairs at the next open (it re-embeds exactly the missing chunks).
4. A stop request ends the document being embedded without writing any of it; the documents already added
   stay (each is whole), the rest are reported "cancelled".

`on_file(FileEvent)` follows each file: queued (chunk count known), embedding (chunks done / total), added,
failed or cancelled. The background job (jobs.py) and the CLI turn these into progress, rates and ETAs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from retrieval.chunking import Chunk, chunk_document
from retrieval.config import IngestLimits, size_text
from retrieval.errors import IngestCancelled, IngestError, RetrievalError
from retrieval.parse import ParsedDocument
from retrieval.sandbox import parse_isolated
from retrieval.sniff import sniff
from store.errors import DuplicateDocumentError  # errors only: no duckdb is imported

Progress = Callable[[str, int, int], None]  # (stage, done, total): add_texts and rebuild


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
    cancelled: bool = False

    @property
    def added(self) -> list[FileResult]:
        return [f for f in self.files if f.error is None]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]


@dataclass
class FileEvent:
    index: int  # position of the file in the upload
    filename: str
    state: str  # queued | embedding | added | failed | cancelled
    chunks_done: int = 0
    chunks_total: int = 0
    error: str | None = None


@dataclass
class _Doc:
    index: int
    result: FileResult
    parsed: ParsedDocument
    chunks: list[Chunk]
    sha256: str


def check_upload(files: list[tuple[str, int]], limits: IngestLimits) -> None:
    """(name, size) of every file of one upload against the per-upload limits; a RetrievalError sentence."""
    if not files:
        raise RetrievalError("No file was chosen. Pick one or more PDF, DOCX, Markdown or text files.")
    if len(files) > limits.max_files_per_upload:
        raise RetrievalError(
            f"This upload has {len(files)} files; at most {limits.max_files_per_upload} go in one upload. "
            "Add them in smaller groups.")
    total = sum(size for _, size in files)
    if total > limits.max_upload_bytes:
        raise RetrievalError(
            f"These files are {size_text(total)} together, over the {size_text(limits.max_upload_bytes)} limit "
            "of one upload. Add them in smaller groups.")


def _fail(fr: FileResult, e: IngestError) -> None:
    fr.error, fr.error_kind, fr.n_chunks = str(e), e.kind, 0


def add_files(retriever, collection: str, files: list[tuple[str, bytes]],
              on_file: Callable[[FileEvent], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> IngestReport:
    """Ingest uploaded files (module docstring); never raises for a bad file, only for a bad upload."""
    check_upload([(name, len(data)) for name, data in files], retriever.limits)
    retriever.create_collection(collection)
    report = IngestReport(collection, [FileResult(name) for name, _ in files])
    emit = on_file or (lambda _e: None)

    def failed(i: int, e: IngestError) -> None:
        _fail(report.files[i], e)
        emit(FileEvent(i, files[i][0], "failed", error=str(e)))

    existing = set(retriever.store.documents(collection)["doc_id"].astype(str))
    todo: list[tuple[int, str, bytes]] = []  # (index, kind, data)
    for i, (name, data) in enumerate(files):
        try:
            kind = sniff(name, data, retriever.limits)
            doc_id = hashlib.sha256(data).hexdigest()[:16]
            if doc_id in existing:
                raise IngestError("duplicate", name, f"{name} is already in collection {collection!r}; skipped.")
            existing.add(doc_id)
            report.files[i].doc_id = doc_id
            todo.append((i, kind, data))
        except IngestError as e:
            failed(i, e)

    def parsed_one(j: int) -> None:
        if should_stop is not None and should_stop():
            raise IngestCancelled("Stopped while the files were read.")

    docs: list[_Doc] = []
    try:
        parsed = parse_isolated([(files[i][0], kind, data) for i, kind, data in todo], retriever.limits,
                                on_file=parsed_one)
    except IngestCancelled:
        return _cancel_rest(report, files, [i for i, _, _ in todo], emit)
    for (i, _, data), res in zip(todo, parsed, strict=True):
        if isinstance(res, IngestError):
            failed(i, res)
            continue
        fr = report.files[i]
        fr.n_pages, fr.n_chars = res.n_pages, res.n_chars
        chunks = chunk_document(res, retriever.chunking)
        if not chunks:
            failed(i, IngestError("no_text", fr.filename, f"{fr.filename} contains no extractable text."))
            continue
        docs.append(_Doc(i, fr, res, chunks, hashlib.sha256(data).hexdigest()))
        emit(FileEvent(i, fr.filename, "queued", 0, len(chunks)))

    for pos, doc in enumerate(docs):
        name, n = doc.result.filename, len(doc.chunks)
        emit(FileEvent(doc.index, name, "embedding", 0, n))
        try:
            vectors = retriever.embedder.encode(
                [c.text for c in doc.chunks], should_stop=should_stop,
                progress=lambda done, total, d=doc: emit(FileEvent(d.index, d.result.filename, "embedding", done,
                                                                   total)))
        except IngestCancelled:
            return _cancel_rest(report, files, [d.index for d in docs[pos:]], emit)
        try:
            commit(retriever, collection, [(doc, vectors)])
        except IngestError as e:  # a duplicate added meanwhile by another session
            failed(doc.index, e)
            continue
        emit(FileEvent(doc.index, name, "added", n, n))
    return report


def _cancel_rest(report: IngestReport, files, indices: list[int], emit) -> IngestReport:
    report.cancelled = True
    for i in indices:
        fr = report.files[i]
        if fr.error is None:
            _fail(fr, IngestError("cancelled", fr.filename, f"{fr.filename} was not added: the upload was cancelled."))
            emit(FileEvent(i, files[i][0], "cancelled", error=fr.error))
    return report


def add_texts(retriever, collection: str, documents: list[dict], progress: Progress | None = None) -> IngestReport:
    """Already-extracted documents [{"doc_id", "title", "text"}] (toy-world corpora, experiments): one embedding
    call for all, then each document and its chunks in one transaction, then one index save."""
    retriever.create_collection(collection)
    report = IngestReport(collection)
    docs = []
    for i, d in enumerate(documents):
        fr = FileResult(d.get("title") or d["doc_id"], doc_id=str(d["doc_id"]))
        report.files.append(fr)
        parsed = ParsedDocument(fr.filename, "text", [(None, d["text"])])
        fr.n_chars = parsed.n_chars
        chunks = chunk_document(parsed, retriever.chunking)
        if not chunks:
            _fail(fr, IngestError("no_text", fr.filename, f"{fr.filename} contains no extractable text."))
            continue
        docs.append(_Doc(i, fr, parsed, chunks, hashlib.sha256(d["text"].encode()).hexdigest()))
    if not docs:
        return report
    vectors = retriever.embedder.encode(
        [c.text for d in docs for c in d.chunks],
        progress=(lambda done, total: progress("embed", done, total)) if progress else None,
    )
    pairs, start = [], 0
    for d in docs:
        pairs.append((d, vectors[start:start + len(d.chunks)]))
        start += len(d.chunks)
    n = commit(retriever, collection, pairs, skip_duplicates=True)
    if progress:
        progress("index", n, n)
    return report


def commit(retriever, collection: str, pairs: list[tuple[_Doc, np.ndarray]], skip_duplicates: bool = False) -> int:
    """Under the index lock: each document with its chunks in one store transaction (which also hands out the
    chunk ids), then the vectors into the index (one save). Returns the chunks added. A document already present
    raises IngestError("duplicate") (or, with skip_duplicates, is reported in its FileResult and skipped)."""
    store = retriever.store
    idx = retriever.index_file(collection)
    added: list[tuple[np.ndarray, list[int]]] = []
    with idx.locked():
        for doc, vectors in pairs:
            fr = doc.result
            rows = [{"doc_id": fr.doc_id, "source": fr.filename, "page": c.page, "char_start": c.char_start,
                     "char_end": c.char_end, "text": c.text} for c in doc.chunks]
            try:
                ids = store.add_document(collection, fr.doc_id, fr.filename, doc.parsed.n_pages, doc.parsed.n_chars,
                                         doc.sha256, {"kind": doc.parsed.kind}, chunks=rows)
            except DuplicateDocumentError:
                e = IngestError("duplicate", fr.filename, f"{fr.filename} is already in collection {collection!r}; "
                                                          "skipped.")
                if not skip_duplicates:
                    raise e from None
                _fail(fr, e)
                continue
            fr.n_chunks = len(ids)
            added.append((vectors, ids))
        if not added:
            return 0
        index = idx.load()  # after the commits: a crash here leaves the index behind, never ahead
        index.add_with_ids(np.concatenate([v for v, _ in added]),
                           np.asarray([i for _, ids in added for i in ids], dtype=np.int64))
        idx.save(index)
    return sum(len(ids) for _, ids in added)
