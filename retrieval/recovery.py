"""What a crash left behind in a collection, found and repaired when the collection is opened.

Writes go store first (a document and its chunks in one transaction), index second (ingest.commit), both
under the collection's index lock. So after a crash:
  - the index may lag the store: chunks committed, their vectors not saved -> embed exactly those and add them;
  - the index may hold ids the store no longer has (a delete that died between its two steps) -> remove them;
  - stores written before documents became atomic may hold a document without chunks (it can never be found,
    and a re-upload is refused as a duplicate) -> delete it, so the file can be uploaded again.
`recover` holds the index lock while it looks and repairs, so it never mistakes an ingest in flight (which
holds the same lock from its commit to its index save) for a crash. It returns one sentence per repair.
"""

from __future__ import annotations

import numpy as np

from retrieval.index import ids_of


def recover(retriever, collection: str) -> list[str]:
    store = retriever.store
    idx = retriever.index_file(collection)
    notes: list[str] = []
    with idx.locked():
        docs = retriever.documents(collection)
        empty = docs[docs["n_chunks"] == 0] if len(docs) else docs
        for row in empty.to_dict("records"):
            store.delete_document(collection, row["doc_id"])
        if len(empty):
            names = ", ".join(sorted(str(f) for f in empty["filename"]))
            notes.append(f"Removed {len(empty)} document(s) of collection {collection!r} that an interrupted upload "
                         f"left without text ({names}); upload them again.")
        index = idx.load()
        in_index = set(ids_of(index).tolist())
        in_store = set(store.chunk_ids(collection))
        extra = sorted(in_index - in_store)
        missing = sorted(in_store - in_index)
        if extra:
            index.remove_ids(np.asarray(extra, dtype=np.int64))
        if missing:
            chunks = store.chunks(collection, missing)
            vectors = retriever.embedder.encode(chunks["text"].tolist())
            index.add_with_ids(vectors, chunks["chunk_id"].to_numpy(dtype=np.int64))
            notes.append(f"The index of collection {collection!r} was missing {len(missing)} chunk(s) that an "
                         "interrupted upload had saved; they were embedded and added.")
        if extra:
            notes.append(f"The index of collection {collection!r} held {len(extra)} chunk(s) of deleted documents; "
                         "they were removed.")
        if extra or missing:
            idx.save(index)
    return notes
