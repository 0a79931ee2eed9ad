"""Chunks keep page and character offsets that point back into the document's text."""

from __future__ import annotations

from tokenizers import Tokenizer

from retrieval.chunking import chunk_document, document_text, model_folder
from retrieval.config import ChunkConfig
from retrieval.parse import ParsedDocument


def test_offsets_pages_and_token_budget():
    para = "The amber road ran from Orra to Velm, and every merchant paid a toll at the bridge. "
    doc = ParsedDocument("x.pdf", "pdf", [(1, para * 12), (2, "Short second page."), (3, "   "), (4, para * 3)], 4)
    cfg = ChunkConfig(min_tokens=40, max_tokens=64, overlap_tokens=8)
    chunks = chunk_document(doc, cfg)
    full = document_text(doc)
    tok = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    assert {c.page for c in chunks} == {1, 2, 4}  # blank page gives no chunk
    assert sum(c.page == 1 for c in chunks) > 1  # a long page is split
    for c in chunks:
        assert full[c.char_start : c.char_end] == c.text
        assert len(tok.encode(c.text, add_special_tokens=False).ids) <= cfg.max_tokens
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts)


def test_unicode_offsets_are_characters_not_bytes():
    text = "Zürich café naïve — ünïcödé. " * 30
    doc = ParsedDocument("u.txt", "text", [(None, text)])
    for c in chunk_document(doc, ChunkConfig(min_tokens=20, max_tokens=40, overlap_tokens=0)):
        assert text[c.char_start : c.char_end] == c.text
