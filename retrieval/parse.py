"""Text extraction from PDF / DOCX / text bytes. PDF and DOCX run inside the parser process (sandbox.py).

Everything here works on bytes already accepted by `sniff.sniff` (type, size, zip directory checked).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from retrieval.config import IngestLimits
from retrieval.errors import IngestError
from retrieval.sniff import decode_text


@dataclass
class ParsedDocument:
    """Extracted text of one file, page by page. `page` is 1-based for PDFs and None otherwise."""

    filename: str
    kind: str  # "pdf" | "docx" | "markdown" | "text"
    pages: list[tuple[int | None, str]] = field(default_factory=list)
    n_pages: int | None = None

    @property
    def n_chars(self) -> int:
        return sum(len(t) for _, t in self.pages)


def parse_bytes(filename: str, kind: str, data: bytes, limits: IngestLimits) -> ParsedDocument:
    if kind == "pdf":
        doc = _parse_pdf(filename, data, limits)
    elif kind == "docx":
        doc = _parse_docx(filename, data, limits)
    else:
        doc = ParsedDocument(filename, kind, [(None, decode_text(filename, data))])
    _check_text(doc, limits)
    return doc


def _too_much_text(filename: str, limits: IngestLimits) -> IngestError:
    return IngestError(
        "too_much_text", filename,
        f"{filename} has more than {limits.max_chars:,} characters of text. Split it into smaller files.",
    )


def _check_text(doc: ParsedDocument, limits: IngestLimits) -> None:
    if doc.n_chars > limits.max_chars:
        raise _too_much_text(doc.filename, limits)
    if not any(t.strip() for _, t in doc.pages):
        hint = " It may be a scanned image: run OCR on it first." if doc.kind == "pdf" else ""
        raise IngestError("no_text", doc.filename, f"{doc.filename} contains no extractable text.{hint}")


def _harden_pypdf(limits: IngestLimits) -> None:
    """Tighten pypdf's own decompression caps (docs/user/security.md) and never call external tools."""
    from pypdf import filters

    cap = min(75_000_000, 4 * limits.max_file_bytes + 10_000_000)
    for name in ("ZLIB_MAX_OUTPUT_LENGTH", "LZW_MAX_OUTPUT_LENGTH", "RUN_LENGTH_MAX_OUTPUT_LENGTH",
                 "JBIG2_MAX_OUTPUT_LENGTH", "MAX_DECLARED_STREAM_LENGTH", "MAX_ARRAY_BASED_STREAM_OUTPUT_LENGTH"):
        if hasattr(filters, name):
            setattr(filters, name, cap)
    filters.JBIG2DEC_BINARY = None


def _parse_pdf(filename: str, data: bytes, limits: IngestLimits) -> ParsedDocument:
    from pypdf import PdfReader

    _harden_pypdf(limits)
    def damaged(detail: str) -> str:
        return (f"{filename} could not be read as a PDF ({detail}); it may be damaged. "
                "Re-export it from its source and try again.")

    reader = None
    for strict in (True, False):  # strict first (most pypdf DoS advisories hit lenient mode), then lenient
        try:
            reader = PdfReader(io.BytesIO(data), strict=strict, root_object_recovery_limit=1000)
            if not reader.is_encrypted:
                _ = len(reader.pages)
            break
        except Exception as e:  # pypdf: "the task of the library user to catch exceptions"
            err = e
    if reader is None:
        raise IngestError("corrupt", filename, damaged(type(err).__name__))
    if reader.is_encrypted:
        ok = False
        try:
            ok = bool(reader.decrypt(""))  # owner-password-only PDFs open with an empty user password
        except Exception:
            ok = False
        if not ok:
            raise IngestError(
                "encrypted", filename,
                f"{filename} is password-protected. Remove the password (print to PDF or save a copy without "
                "protection) and upload it again.",
            )
    try:
        n_pages = len(reader.pages)
    except Exception as e:
        raise IngestError("corrupt", filename, damaged(type(e).__name__)) from None
    if n_pages > limits.max_pages:
        raise IngestError(
            "too_many_pages", filename,
            f"{filename} has {n_pages} pages, over the {limits.max_pages}-page limit. Split it into smaller files.",
        )
    pages, total = [], 0
    for i in range(n_pages):
        try:
            text = reader.pages[i].extract_text() or ""
        except Exception as e:
            raise IngestError("corrupt", filename, damaged(f"page {i + 1}: {type(e).__name__}")) from None
        total += len(text)
        if total > limits.max_chars:  # stop extracting as soon as the budget is spent
            raise _too_much_text(filename, limits)
        pages.append((i + 1, text))
    return ParsedDocument(filename, "pdf", pages, n_pages)


def _check_xml_parts(filename: str, data: bytes) -> None:
    """Every XML part of a DOCX through defusedxml's expat reader, which refuses a document type declaration
    (and entities, external references) wherever it is and in whatever encoding the part declares; python-docx
    then parses parts already known to have none. Sizes were checked by sniff.check_zip."""
    from xml.sax import SAXException
    from xml.sax.handler import ContentHandler

    from defusedxml import DefusedXmlException
    from defusedxml.expatreader import create_parser

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if not (name.endswith(".xml") or name.endswith(".rels")):
                continue
            parser = create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
            parser.setContentHandler(ContentHandler())
            try:
                with zf.open(name) as f:
                    parser.parse(f)
            except DefusedXmlException:
                raise IngestError(
                    "corrupt", filename,
                    f"{filename} contains an XML document type declaration or entity in {name}, which Word files "
                    "never have. Re-save it in Word and try again.",
                ) from None
            except (SAXException, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise IngestError(
                    "corrupt", filename,
                    f"{filename} has a damaged part {name} ({type(e).__name__}). Re-save it in Word and try again.",
                ) from None


def _parse_docx(filename: str, data: bytes, limits: IngestLimits) -> ParsedDocument:
    import docx
    from docx.table import Table

    _check_xml_parts(filename, data)
    try:
        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        total = 0
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                text = "\n".join(" | ".join(c.text for c in row.cells) for row in block.rows)
            else:
                text = block.text
            parts.append(text)
            total += len(text) + 1
            if total > limits.max_chars:
                raise _too_much_text(filename, limits)
    except IngestError:
        raise
    except Exception as e:
        raise IngestError(
            "corrupt", filename,
            f"{filename} could not be read as a Word document ({type(e).__name__}). Re-save it as .docx and try again.",
        ) from None
    return ParsedDocument(filename, "docx", [(None, "\n".join(parts))], None)
