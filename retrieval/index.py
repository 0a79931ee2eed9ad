"""FAISS index files: IndexIDMap2(IndexFlatIP(dim)) with int64 chunk ids, saved atomically.

Ids are the store's chunk ids (handed out by `store.add_document`), so they survive deletions (IndexIDMap2 keeps
explicit ids; a plain IndexFlat would shift them). Saving writes a temp file in the same folder,
fsyncs it, then `os.replace`s it over the old file, so a crash leaves the old or the new index, never a
torn one. FAISS CPU indexes allow concurrent searches but not concurrent changes: changes go through
`IndexFile.locked()` (a cross-process file lock) and work on a private copy.
"""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from retrieval.errors import RetrievalError

_READ_CACHE: dict[str, tuple[tuple[int, int], object]] = {}
_READ_LOCK = threading.Lock()


def new_index(dim: int):
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


class IndexFile:
    """One collection's index on disk at `path` (e.g. data/indexes/<collection>.faiss)."""

    def __init__(self, path: Path, dim: int):
        self.path = Path(path)
        self.dim = dim

    @contextmanager
    def locked(self, timeout_s: float = 60.0):
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".lock", timeout=timeout_s)
        try:
            with lock:
                yield
        except Timeout:
            raise RetrievalError(
                f"The index {self.path.name} is being changed by another process. Try again in a moment."
            ) from None

    def load(self):
        """A private, modifiable copy of the index (a new empty one if the file does not exist)."""
        import faiss

        if not self.path.exists():
            return new_index(self.dim)
        try:
            index = faiss.read_index(str(self.path))
        except Exception as e:
            raise RetrievalError(
                f"The index file {self.path} is unreadable ({e}). Rebuild the collection "
                "(`python -m backend rag rebuild <collection>` or the Rebuild button)."
            ) from None
        if index.d != self.dim:
            raise RetrievalError(f"The index file {self.path} has dimension {index.d}, expected {self.dim}. Rebuild it.")
        return index

    def cached(self):
        """A shared read-only view for searching, reloaded when the file changes on disk."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return new_index(self.dim)
        key = (st.st_mtime_ns, st.st_size)
        with _READ_LOCK:
            hit = _READ_CACHE.get(str(self.path))
            if hit and hit[0] == key:
                return hit[1]
        index = self.load()
        with _READ_LOCK:
            _READ_CACHE[str(self.path)] = (key, index)
        return index

    def save(self, index) -> None:
        """Atomic replace: temp file in the same folder, fsync, os.replace, fsync the folder."""
        import faiss

        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            buf = faiss.serialize_index(index)
            with open(tmp, "wb") as f:
                f.write(np.asarray(buf).tobytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise RetrievalError(f"Could not save the index {self.path} ({e}). Check free disk space.") from None
        finally:
            tmp.unlink(missing_ok=True)
        try:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        with _READ_LOCK:
            _READ_CACHE.pop(str(self.path), None)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        with _READ_LOCK:
            _READ_CACHE.pop(str(self.path), None)


def ids_of(index) -> np.ndarray:
    import faiss

    return faiss.vector_to_array(index.id_map).astype(np.int64)


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """queries float32 [q, dim] normalised -> (scores [q, k], ids [q, k]); id -1 where fewer than k."""
    k = max(1, min(k, max(index.ntotal, 1)))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
