"""Retrieval: documents in, ranked chunks out (text, source file, page, character offsets, score).

Knows nothing about language models. Importing this package is cheap (no torch/faiss): the heavy
modules load on first use, and the parser process imports only what parsing needs.

    from retrieval import Retriever, IngestError, IngestLimits
"""

from retrieval.config import ChunkConfig, IngestLimits, data_dir
from retrieval.errors import INGEST_ERROR_KINDS, IngestError, RetrievalError

__all__ = [
    "ChunkConfig", "IngestLimits", "data_dir", "INGEST_ERROR_KINDS", "IngestError", "RetrievalError",
    "Retriever", "RetrievedChunk", "IngestReport", "FileResult", "SUPPORTED_EXTENSIONS",
]


def __getattr__(name):
    if name in ("Retriever", "RetrievedChunk", "IngestReport", "FileResult"):
        from retrieval import service

        return getattr(service, name)
    if name == "SUPPORTED_EXTENSIONS":
        from retrieval.sniff import SUPPORTED_EXTENSIONS

        return SUPPORTED_EXTENSIONS
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
