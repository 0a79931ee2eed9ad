"""Configuration dataclasses for retrieval (passed whole; defaults are the app's limits)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import RetrievalError

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on an upload and on each of its files. Anything beyond them is refused with a sentence.

    max_file_bytes is also Streamlit's `server.maxUploadSize` (.streamlit/config.toml, in MiB), so the server
    refuses a bigger file before it reaches the app (tests/faults checks that the two agree)."""
    max_file_bytes: int = 20 * 1024 * 1024  # upload size
    max_files_per_upload: int = 20  # files in one upload (page) or one `rag ingest` call
    max_upload_bytes: int = 64 * 1024 * 1024  # all files of one upload together
    max_pages: int = 500  # PDF pages, checked before any text extraction
    max_chars: int = 2_000_000  # extracted characters per document
    max_zip_entries: int = 2_000  # DOCX central directory entries
    max_zip_uncompressed_bytes: int = 200 * 1024 * 1024  # sum of declared sizes (no decompression)
    max_zip_ratio: int = 200  # declared/compressed ratio refused for entries above 1 MiB
    parse_timeout_s: float = 30.0  # wall clock per PDF/DOCX in the parser process
    parser_memory_bytes: int = 2 * 1024 * 1024 * 1024  # RLIMIT_AS of the parser process
    max_concurrent_parses: int = 2  # parser processes at once in this process


@dataclass(frozen=True)
class ChunkConfig:
    """Token-aware chunking with the embedder's own tokenizer (MiniLM reads at most 256 word pieces)."""
    min_tokens: int = 96  # a chunk is "full" once it reaches this many tokens ...
    max_tokens: int = 200  # ... and never exceeds this many
    overlap_tokens: int = 24
    max_chunks_per_document: int = 20_000


def size_text(n: int) -> str:
    """Bytes in the unit the limits are set in (binary: 20 MiB is 20 * 1024 * 1024 bytes)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def data_dir() -> Path:
    """`SSM_ARENA_DATA` or `<repo>/data`."""
    return Path(os.environ.get("SSM_ARENA_DATA") or REPO_ROOT / "data")


def index_path(collection: str, root: Path | None = None) -> Path:
    check_collection_name(collection)
    return (root or data_dir()) / "indexes" / f"{collection}.faiss"


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION_RE.match(name):
        raise RetrievalError(
            f"Collection name {name!r} is not allowed. Use 1 to 64 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name
