"""Errors raised by the results store. Every message is a sentence a user can act on."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The results store could not do what was asked (bad file, bad row, unknown run...)."""


class StoreLockedError(StoreError):
    """The database stayed locked by another process for longer than the store's lock timeout."""


class StoreDamagedError(StoreError):
    """The database file failed the integrity check (store/integrity.py): the store neither reads nor writes it
    and leaves it as it is; the message says to move it away."""


class DuplicateDocumentError(StoreError):
    """The document (same content hash) is already in the collection; nothing was written."""


class StoreImportError(StoreError):
    """Some lines of a JSONL results file were malformed; every other line was imported.

    `counts` holds what was imported (same keys as `Store.import_jsonl` returns) and `problems` one
    "file:line: reason" string per bad line.
    """

    def __init__(self, message: str, counts: dict, problems: list[str]):
        super().__init__(message)
        self.counts = counts
        self.problems = problems
