"""Errors of the retrieval package. Messages are sentences fit for the UI (what happened, what to do)."""

from __future__ import annotations

# Kinds of ingest failure (stable strings: tests, the page and the CLI key on them).
INGEST_ERROR_KINDS = (
    "too_large", "empty", "binary", "unsupported", "wrong_extension", "corrupt", "encrypted",
    "zip_bomb", "too_many_pages", "too_much_text", "no_text", "timeout", "crashed", "duplicate", "cancelled",
)


class RetrievalError(RuntimeError):
    """A retrieval operation failed; the message is a sentence for the user."""


class IngestCancelled(RetrievalError):
    """An ingest was stopped on request; the file in progress was not added (nothing of it was written)."""


class IngestError(RetrievalError):
    """One file could not be ingested. `kind` is one of INGEST_ERROR_KINDS."""

    def __init__(self, kind: str, filename: str, message: str):
        assert kind in INGEST_ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.filename = filename

    def __reduce__(self):  # picklable across the parser process boundary
        return (IngestError, (self.kind, self.filename, str(self)))
