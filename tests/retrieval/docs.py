"""Small document builders for tests (made here with pypdf / python-docx writers; no binary fixtures)."""

from __future__ import annotations

import io
import zipfile


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A PDF with each string as one page of Helvetica text (pypdf writer); optionally encrypted (RC4)."""
    from retrieval.testdata import make_text_pdf

    return make_text_pdf(pages, password)


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def make_zip_bomb_docx(inflated_bytes: int = 8 * 1024 * 1024) -> bytes:
    """A real DOCX plus one part of `inflated_bytes` zeros: compresses ~1000:1 (a decompression bomb)."""
    src = zipfile.ZipFile(io.BytesIO(make_docx(["harmless looking text"])))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr("word/media/bomb.xml", b"\0" * inflated_bytes)
    return buf.getvalue()


def make_docx_with_broken_xml() -> bytes:
    src = zipfile.ZipFile(io.BytesIO(make_docx(["text"])))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = b"<w:document><unclosed" if info.filename == "word/document.xml" else src.read(info)
            out.writestr(info, data)
    return buf.getvalue()


def make_encrypted_office() -> bytes:
    """What Word writes for a password-protected .docx: an OLE compound file with an EncryptedPackage."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
    return header + "EncryptedPackage".encode("utf-16-le") + b"\0" * 1024


def make_pdf_flate_bomb(inflated_bytes: int = 70_000_000) -> bytes:
    """A one-page PDF whose content stream is ~70 MB of whitespace compressed to ~70 KB (FlateDecode)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    stream = DecodedStreamObject()
    stream.set_data(b"BT 72 720 Td (x) Tj ET\n" + b" " * inflated_bytes)
    page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_docx_with_part(name: str, data: bytes) -> bytes:
    """A real DOCX with one XML part replaced (or added) by `data`."""
    src = zipfile.ZipFile(io.BytesIO(make_docx(["harmless looking text"])))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, data if info.filename == name else src.read(info))
        if name not in src.namelist():
            out.writestr(name, data)
    return buf.getvalue()


XXE = '<!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>'


def docx_doctype_after_comment() -> bytes:
    """The DOCTYPE after a 5 KB comment (a check that reads only the first 4 KiB misses it)."""
    body = f'<?xml version="1.0"?><!-- {"x" * 5000} -->{XXE}<w:document xmlns:w="urn:w">&x;</w:document>'
    return make_docx_with_part("word/document.xml", body.encode())


def docx_doctype_in_utf16() -> bytes:
    """The DOCTYPE in a UTF-16 part (a byte search for b"<!DOCTYPE" misses it)."""
    body = f'<?xml version="1.0" encoding="UTF-16"?>{XXE}<w:document xmlns:w="urn:w">&x;</w:document>'
    return make_docx_with_part("word/document.xml", body.encode("utf-16"))
