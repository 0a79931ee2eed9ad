"""A fast stand-in for the sentence embedder (hashed bag of words), for tests about ingest bookkeeping (atomic
documents, progress, cancel, crashes) where the vectors' quality does not matter. Same interface as
retrieval.embed.Embedder: name, dim, encode(texts, batch_size, progress, should_stop)."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from retrieval.config import EMBED_DIM, EMBEDDER_NAME
from retrieval.errors import IngestCancelled


class HashEmbedder:
    name = EMBEDDER_NAME  # collections check the embedder's name
    dim = EMBED_DIM

    def __init__(self, seconds_per_batch: float = 0.0):
        self.seconds_per_batch = seconds_per_batch
        self.batches = 0

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % self.dim] += 1
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode(self, texts, batch_size: int = 32, progress=None, should_stop=None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            if should_stop is not None and should_stop():
                raise IngestCancelled("Stopped before every chunk was embedded; nothing of it was kept.")
            time.sleep(self.seconds_per_batch)
            for i in range(start, min(start + batch_size, len(texts))):
                out[i] = self._vector(texts[i])
            self.batches += 1
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        return out
