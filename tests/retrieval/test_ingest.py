"""Each format parses; each kind of malformed file gets its specific error while the rest still go in."""

from __future__ import annotations

import dataclasses
import time

import pytest

from retrieval.config import IngestLimits
from retrieval.errors import IngestError
from retrieval.sandbox import parse_isolated
from retrieval.sniff import sniff
from tests.retrieval.docs import (
    docx_doctype_after_comment,
    docx_doctype_in_utf16,
    make_docx,
    make_docx_with_broken_xml,
    make_encrypted_office,
    make_pdf,
    make_zip_bomb_docx,
)

LIMITS = IngestLimits()


def _parse_one(name: str, data: bytes, limits: IngestLimits = LIMITS):
    kind = sniff(name, data, limits)
    [res] = parse_isolated([(name, kind, data)], limits)
    if isinstance(res, IngestError):
        raise res
    return res


def test_pdf_pages_and_text():
    doc = _parse_one("report.pdf", make_pdf(["Ada Lovelace was born in London.", "Second page (parens) here."]))
    assert doc.kind == "pdf" and doc.n_pages == 2
    assert [p for p, _ in doc.pages] == [1, 2]
    assert "Ada Lovelace was born in London." in doc.pages[0][1]
    assert "Second page (parens) here." in doc.pages[1][1]


def test_docx_paragraphs_and_tables():
    doc = _parse_one("notes.docx", make_docx(["First paragraph.", "Second paragraph."],
                                             table=[["city", "river"], ["Velm", "Orra"]]))
    text = doc.pages[0][1]
    assert doc.kind == "docx" and doc.pages[0][0] is None
    assert "First paragraph." in text and "Second paragraph." in text and "Velm | Orra" in text


@pytest.mark.parametrize("name,data,expected", [
    ("a.md", b"# Title\n\nSome *markdown* text.", "# Title\n\nSome *markdown* text."),
    ("a.txt", "caf\u00e9 na\u00efve".encode(), "caf\u00e9 na\u00efve"),
    ("b.txt", "\ufeffUTF-16 text \u00e9".encode("utf-16"), "UTF-16 text \u00e9"),
    ("c.txt", "latin-1 caf\u00e9".encode("cp1252"), "latin-1 caf\u00e9"),
    ("le.txt", "UTF-16 without a byte order mark\nline two".encode("utf-16-le"), "UTF-16 without a byte order mark\nline two"),
    ("be.md", "# UTF-16 big-endian, no BOM".encode("utf-16-be"), "# UTF-16 big-endian, no BOM"),
    ("README", b"no extension, plain text", "no extension, plain text"),
])
def test_text_formats(name, data, expected):
    doc = _parse_one(name, data)
    assert doc.kind == ("markdown" if name.endswith(".md") else "text")
    assert doc.pages[0][1].lstrip("\ufeff") == expected


def test_content_beats_extension_for_type_detection():
    assert sniff("scan.PDF", make_pdf(["x"]), LIMITS) == "pdf"
    assert sniff("noext", make_docx(["x"]), LIMITS) == "docx"


MALFORMED = [
    # (file name, bytes, limits override, expected error kind)
    ("corrupt.pdf", b"%PDF-1.7\n" + b"\x13garbage that is not a pdf " * 40, {}, "corrupt"),
    ("truncated.pdf", make_pdf(["some text"] * 3)[:300], {}, "corrupt"),
    ("broken.docx", make_docx_with_broken_xml(), {}, "corrupt"),
    ("doctype-late.docx", docx_doctype_after_comment(), {}, "corrupt"),
    ("doctype-utf16.docx", docx_doctype_in_utf16(), {}, "corrupt"),
    ("damaged.docx", make_docx(["x"])[:200], {}, "corrupt"),
    ("locked.pdf", make_pdf(["top secret"], password="hunter2"), {}, "encrypted"),
    ("locked.docx", make_encrypted_office(), {}, "encrypted"),
    ("bomb.docx", make_zip_bomb_docx(), {}, "zip_bomb"),
    ("many-entries.docx", make_docx(["x"]), {"max_zip_entries": 3}, "zip_bomb"),
    ("big-inflate.docx", make_docx(["x"] * 50), {"max_zip_uncompressed_bytes": 10_000}, "zip_bomb"),
    ("really-a-docx.pdf", make_docx(["x"]), {}, "wrong_extension"),
    ("really-a-pdf.txt", make_pdf(["x"]), {}, "wrong_extension"),
    ("really-text.docx", b"just some text", {}, "wrong_extension"),
    ("random.txt", bytes(range(256)) * 8, {}, "binary"),
    ("image.md", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, {}, "binary"),
    ("archive.txt", b"PK\x03\x04" + b"\0" * 100, {}, "corrupt"),
    ("empty.txt", b"", {}, "empty"),
    ("blank.md", b"  \n\t\n", {}, "empty"),
    ("blank-page.pdf", make_pdf([""]), {}, "no_text"),
    ("huge.txt", b"word " * 400, {"max_file_bytes": 1000}, "too_large"),
    ("long.pdf", make_pdf(["p"] * 6), {"max_pages": 5}, "too_many_pages"),
    ("chatty.md", b"word " * 400, {"max_chars": 1000}, "too_much_text"),
    ("chatty.pdf", make_pdf(["word " * 150] * 3), {"max_chars": 1000}, "too_much_text"),
    ("chatty.docx", make_docx(["word " * 150] * 3), {"max_chars": 1000}, "too_much_text"),
    ("program.exe", b"MZ\x90\x00", {}, "unsupported"),
]


@pytest.mark.parametrize("name,data,override,kind", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_each_malformed_kind_has_its_error(name, data, override, kind):
    limits = dataclasses.replace(LIMITS, **override)
    with pytest.raises(IngestError) as info:
        _parse_one(name, data, limits)
    assert info.value.kind == kind, str(info.value)
    assert name in str(info.value) and str(info.value).endswith(".")  # a sentence naming the file


def test_parser_timeout_stops_the_file_and_the_batch_goes_on():
    limits = dataclasses.replace(LIMITS, parse_timeout_s=0.01)  # less than a parser process needs to answer
    items = [("slow.pdf", "pdf", make_pdf(["a"])), ("ok.md", "markdown", b"fine text")]
    t0 = time.monotonic()
    out = parse_isolated(items, limits)
    assert time.monotonic() - t0 < 10
    assert isinstance(out[0], IngestError) and out[0].kind == "timeout"
    assert out[1].pages[0][1] == "fine text"


def test_parser_out_of_memory_is_contained():
    # 24 MB of address space: the parser process starts (Python needs ~13 MB) but cannot load pypdf or lxml
    limits = dataclasses.replace(LIMITS, parser_memory_bytes=24 * 1024 * 1024)
    items = [("heavy.pdf", "pdf", make_pdf(["a"])), ("after.docx", "docx", make_docx(["after"])),
             ("ok.txt", "text", b"still fine")]
    out = parse_isolated(items, limits)
    assert [getattr(o, "kind", None) for o in out[:2]] == ["crashed", "crashed"]
    assert out[2].pages[0][1] == "still fine"


def test_batch_with_every_malformed_kind_still_adds_the_good_files(any_retriever):
    retriever = any_retriever
    good = [("good.pdf", make_pdf(["The lighthouse of Orra was built in 1822."])),
            ("good.docx", make_docx(["The river Velm flows north."])),
            ("good.md", b"# Notes\n\nThe mill at Kest grinds barley.")]
    bad = [(n, d) for n, d, o, _ in MALFORMED if not o]
    retriever.limits = dataclasses.replace(retriever.limits, max_files_per_upload=len(bad) + len(good))
    report = retriever.add_files("mixed", bad[: len(bad) // 2] + good + bad[len(bad) // 2 :])
    assert sorted(f.filename for f in report.added) == ["good.docx", "good.md", "good.pdf"]
    expected = {n: k for n, _, o, k in MALFORMED if not o}
    assert {f.filename: f.error_kind for f in report.failed} == expected
    docs = retriever.documents("mixed")
    assert sorted(docs["filename"]) == ["good.docx", "good.md", "good.pdf"]
    assert (docs["n_chunks"] >= 1).all()
    # uploading the same file again is reported, not duplicated
    again = retriever.add_files("mixed", [good[0]])
    assert again.failed[0].error_kind == "duplicate" and len(retriever.documents("mixed")) == 3


def test_mutated_pdfs_and_docx_only_ever_give_documents_or_ingest_errors():
    """A small seeded mutation fuzz: corrupted bytes never escape as another exception or hang the batch."""
    import random

    from retrieval.parse import ParsedDocument

    rng = random.Random(1234)
    seeds = [("f.pdf", make_pdf(["Fuzzing the lighthouse of Orra.", "Second page."])),
             ("f.docx", make_docx(["Fuzz paragraph one.", "Two."], table=[["a", "b"]]))]
    items = []
    for i in range(24):
        name, data = seeds[i % 2]
        buf = bytearray(data)
        for _ in range(rng.choice([1, 8, 64])):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        if i % 6 == 5:
            buf = buf[: rng.randrange(len(buf))]  # truncated too
        items.append((f"{i}-{name}", bytes(buf)))
    limits = dataclasses.replace(LIMITS, parse_timeout_s=10)
    accepted, outcomes = [], {}
    for name, data in items:
        try:
            accepted.append((name, sniff(name, data, limits), data))
        except IngestError as e:
            outcomes[name] = e.kind
    for (name, _, _), res in zip(accepted, parse_isolated(accepted, limits), strict=True):
        assert isinstance(res, ParsedDocument | IngestError), (name, res)
        outcomes[name] = res.kind if isinstance(res, IngestError) else "ok"
    assert len(outcomes) == len(items)
    assert set(outcomes.values()) <= {"ok", "corrupt", "no_text", "zip_bomb", "wrong_extension", "binary",
                                      "encrypted", "timeout", "crashed"}


@pytest.mark.parametrize("data", [docx_doctype_after_comment(), docx_doctype_in_utf16()])
def test_a_doctype_anywhere_in_any_encoding_is_refused(data):
    with pytest.raises(IngestError, match="document type declaration or entity in word/document.xml"):
        _parse_one("x.docx", data)


def test_limits_print_in_the_unit_that_was_meant():
    from retrieval.sniff import too_large

    message = str(too_large("big.pdf", 21 * 2**20 + 5, LIMITS))
    assert "21.0 MiB, over the 20 MiB limit per file" in message and "MB" not in message.replace("MiB", "")
