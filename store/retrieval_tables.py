"""Retrieval metadata tables: collections, documents, chunks (retrieval/ never opens DuckDB itself).

Chunk ids are the int64 ids of the FAISS index (IndexIDMap2). Each collection keeps a high-water
mark `next_chunk_id`, so an id is never handed out twice, even after its document was deleted.

A document and its chunks go in together: `add_document(..., chunks=rows)` is one transaction (that also
hands out the chunk ids), so a crash leaves the whole document or nothing (never a document without chunks, which a re-upload would then meet as
a duplicate). `chunk_ids(collection)` reads only the ids (the status check compares them with the index).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from store.errors import DuplicateDocumentError, StoreError
from store.records import utc_now
from store.rows import decode_json_columns, normalize_all
from store.schema import CHUNKS, DOCUMENTS


class RetrievalTablesMixin:
    """Mixed into Store; relies on Store.session() and Store._insert()."""

    @staticmethod
    def _collection_row(con, name: str):
        rows = con.execute(
            "SELECT embedder, dim, next_chunk_id FROM collections WHERE name = ?", [name]
        ).fetchall()
        if not rows:
            raise StoreError(f"There is no document collection named {name!r}; create it first.")
        return rows[0]

    def add_collection(self, name: str, embedder: str, dim: int) -> None:
        """Create a collection; calling it again with the same embedder and dim does nothing."""
        if not name or not isinstance(name, str):
            raise StoreError("A collection needs a non-empty name.")
        with self.session() as con:
            rows = con.execute("SELECT embedder, dim FROM collections WHERE name = ?", [name]).fetchall()
            if rows:
                row = rows[0]
                if (row[0], row[1]) != (embedder, int(dim)):
                    raise StoreError(
                        f"The collection {name!r} already exists with embedder {row[0]} (dim {row[1]}); "
                        "drop it first or pick another name."
                    )
                return
            con.execute(
                "INSERT INTO collections VALUES (?, ?, ?, ?, 0)", [name, embedder, int(dim), utc_now()]
            )

    def collections(self) -> pd.DataFrame:
        """Collections with their document and chunk counts."""
        with self.session() as con:
            return con.execute(
                "SELECT c.*, "
                "(SELECT count(*) FROM documents d WHERE d.collection = c.name) AS n_documents, "
                "(SELECT count(*) FROM chunks k WHERE k.collection = c.name) AS n_chunks "
                "FROM collections c ORDER BY c.name"
            ).df()

    def drop_collection(self, name: str) -> None:
        """Delete a collection with all its documents and chunks (no error if it does not exist)."""
        with self.session() as con:
            for table, col in (("chunks", "collection"), ("documents", "collection"), ("collections", "name")):
                con.execute(f"DELETE FROM {table} WHERE {col} = ?", [name])

    def add_document(self, collection: str, doc_id: str, filename: str, n_pages: int | None, n_chars: int,
                     sha256: str, meta: dict | None = None, chunks: list[dict] | None = None) -> list[int]:
        """Add a document and its `chunks` (rows as for add_chunks) in one transaction; returns the chunk ids.
        Chunks without a chunk_id get the collection's next free ids, taken in the same transaction. A document
        already in the collection raises DuplicateDocumentError (and nothing is written)."""
        row = {"collection": collection, "doc_id": doc_id, "filename": filename, "n_pages": n_pages,
               "n_chars": n_chars, "sha256": sha256, "meta": meta or {}, "created_at": utc_now()}
        rows = normalize_all([row], DOCUMENTS, "document")
        with self.session() as con:
            next_id = int(self._collection_row(con, collection)[2])
            if con.execute(
                "SELECT 1 FROM documents WHERE collection = ? AND doc_id = ?", [collection, doc_id]
            ).fetchall():
                raise DuplicateDocumentError(
                    f"The document {doc_id!r} ({filename}) is already in collection {collection!r}; delete it "
                    "first to replace it."
                )
            given = []
            for c in chunks or []:
                if c.get("chunk_id") is None:
                    c = {**c, "chunk_id": next_id}
                    next_id += 1
                given.append(c)
            chunk_rows, ids = self._chunk_rows(collection, given)
            self._insert(con, "documents", rows, DOCUMENTS, ignore_existing=False)
            self._insert_chunks(con, collection, chunk_rows, ids)
            return ids

    @staticmethod
    def _chunk_rows(collection: str, rows: list[dict]) -> tuple[list[dict], list[int]]:
        if not rows:
            return [], []
        norm = normalize_all([{**r, "collection": collection} for r in rows], CHUNKS, "chunk")
        ids = [r.get("chunk_id") for r in norm]
        if any(i is None for i in ids):
            raise StoreError("Every chunk needs an integer chunk_id (use next_chunk_id/reserve_chunk_ids).")
        if len(set(ids)) != len(ids):
            raise StoreError("Two chunks in this batch have the same chunk_id; ids must be unique.")
        return norm, ids

    def _insert_chunks(self, con, collection: str, norm: list[dict], ids: list[int]) -> int:
        if not norm:
            return 0
        try:
            n = self._insert(con, "chunks", norm, CHUNKS, ignore_existing=False)
        except duckdb.ConstraintException:
            raise StoreError(
                f"Some chunk ids are already used in collection {collection!r}; take new ids from "
                "reserve_chunk_ids()."
            ) from None
        con.execute(
            "UPDATE collections SET next_chunk_id = greatest(next_chunk_id, ?) WHERE name = ?",
            [max(ids) + 1, collection],
        )
        return n

    def add_chunks(self, collection: str, rows: list[dict]) -> int:
        """Add chunks (chunk_id, doc_id, source, page, char_start, char_end, text); returns the count."""
        norm, ids = self._chunk_rows(collection, rows)
        if not norm:
            return 0
        with self.session() as con:
            self._collection_row(con, collection)
            return self._insert_chunks(con, collection, norm, ids)

    def documents(self, collection: str) -> pd.DataFrame:
        """Documents of a collection (oldest first) with their chunk counts; meta is a dict."""
        with self.session() as con:
            df = con.execute(
                "SELECT d.*, (SELECT count(*) FROM chunks k WHERE k.collection = d.collection "
                "AND k.doc_id = d.doc_id) AS n_chunks FROM documents d WHERE d.collection = ? "
                "ORDER BY d.created_at, d.doc_id",
                [collection],
            ).df()
        return decode_json_columns(df, DOCUMENTS)

    def chunks(self, collection: str, chunk_ids: list[int] | None = None) -> pd.DataFrame:
        """Chunks of a collection ordered by chunk_id; with chunk_ids, only those (missing ids are skipped)."""
        sql, params = "SELECT * FROM chunks WHERE collection = ?", [collection]
        if chunk_ids is not None:
            sql += " AND list_contains(?, chunk_id)"
            params.append([int(i) for i in chunk_ids])
        with self.session() as con:
            return con.execute(sql + " ORDER BY chunk_id", params).df()

    def delete_document(self, collection: str, doc_id: str) -> list[int]:
        """Delete a document and its chunks; returns the deleted chunk ids (to remove from FAISS)."""
        with self.session() as con:
            ids = [r[0] for r in con.execute(
                "SELECT chunk_id FROM chunks WHERE collection = ? AND doc_id = ? ORDER BY chunk_id",
                [collection, doc_id],
            ).fetchall()]
            con.execute("DELETE FROM chunks WHERE collection = ? AND doc_id = ?", [collection, doc_id])
            con.execute("DELETE FROM documents WHERE collection = ? AND doc_id = ?", [collection, doc_id])
        return ids

    def chunk_ids(self, collection: str) -> list[int]:
        """Every chunk id of a collection, ascending (cheap: no text is read)."""
        with self.session() as con:
            return [int(r[0]) for r in con.execute(
                "SELECT chunk_id FROM chunks WHERE collection = ? ORDER BY chunk_id", [collection]).fetchall()]

    def next_chunk_id(self, collection: str) -> int:
        """The smallest chunk id never used in this collection (ids are not reused after deletion)."""
        with self.session() as con:
            return int(self._collection_row(con, collection)[2])

    def reserve_chunk_ids(self, collection: str, n: int) -> int:
        """Atomically reserve `n` consecutive ids and return the first: safe when two processes ingest
        into the same collection at once (next_chunk_id + add_chunks alone could race)."""
        with self.session() as con:
            first = int(self._collection_row(con, collection)[2])
            con.execute(
                "UPDATE collections SET next_chunk_id = ? WHERE name = ?", [first + int(n), collection]
            )
        return first
