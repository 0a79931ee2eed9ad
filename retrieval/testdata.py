"""Synthetic documents for the retrieval benchmark and the tests (no files on disk).

Why our own: a text PDF of known pages is a few lines with pypdf's writer; no fixture library makes one.
"""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def make_text_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A text PDF, one passage per page (pypdf writer, Helvetica; long lines wrapped every 90 chars);
    `password` encrypts it (RC4-128). Also the tests' PDF fixture maker."""
    w = PdfWriter()
    font = w._add_object(DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                           NameObject("/Subtype"): NameObject("/Type1"),
                                           NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in pages:
        page = w.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        safe = text.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        lines = [safe[i : i + 90] for i in range(0, len(safe), 90)]
        ops = "BT /F1 10 Tf 40 750 Td 12 TL " + " ".join(f"({ln}) Tj T*" for ln in lines) + " ET"
        s = DecodedStreamObject()
        s.set_data(ops.encode("latin-1"))
        page[NameObject("/Contents")] = w._add_object(s)
    if password:
        w.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()
