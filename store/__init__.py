"""The results store: the only code that opens DuckDB (see store/README.md).

    from store import open_store, RecordWriter, StoreError, StoreLockedError

duckdb is imported lazily: `from store import RecordWriter` works on machines without duckdb.
"""

from __future__ import annotations

from store.errors import StoreError, StoreImportError, StoreLockedError
from store.records import RESULT_SUFFIXES, RecordWriter, open_results, result_files

__all__ = ["open_store", "Store", "RecordWriter", "StoreError", "StoreLockedError", "StoreImportError", "open_results",
           "result_files", "RESULT_SUFFIXES"]


def open_store(path=None, lock_timeout: float | None = None):
    """Open the DuckDB results store (see store.db.open_store)."""
    from store.db import open_store as _open

    return _open(path, lock_timeout=lock_timeout)


def __getattr__(name: str):
    if name in ("Store", "default_db_path"):
        from store import db

        return getattr(db, name)
    raise AttributeError(f"module 'store' has no attribute {name!r}")
