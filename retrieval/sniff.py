"""Decide what a file is from its bytes (magic numbers), check it against its extension and the limits.

Runs in the app process on raw bytes only: it never decompresses anything. A DOCX (a ZIP archive) is
checked through its central directory (declared sizes) before any parser sees it, so a decompression
bomb is refused without inflating a byte.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath

from retrieval.config import IngestLimits, size_text
from retrieval.errors import IngestError

# kind -> extensions that may carry it. "text" and "markdown" are interchangeable.
EXTENSIONS = {"pdf": ("pdf",), "docx": ("docx",), "markdown": ("md", "markdown"), "text": ("txt", "text")}
SUPPORTED_EXTENSIONS = tuple(e for exts in EXTENSIONS.values() for e in exts)
KIND_LABEL = {"pdf": "a PDF", "docx": "a Word (DOCX) document", "markdown": "Markdown text", "text": "plain text"}

_BINARY_MAGIC = (  # (prefix, what it is) for a helpful "binary" message
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office (.doc/.xls) file; save it as .docx"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "a Linux executable"),
    (b"MZ", "a Windows executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)


def extension(filename: str) -> str:
    return PurePath(filename).suffix.lower().lstrip(".")


def sniff(filename: str, data: bytes, limits: IngestLimits) -> str:
    """Return "pdf" | "docx" | "markdown" | "text" for acceptable bytes, else raise IngestError."""
    ext = extension(filename)
    if ext and ext not in SUPPORTED_EXTENSIONS:
        raise IngestError(
            "unsupported", filename,
            f"{filename}: .{ext} files are not supported. Upload PDF, DOCX, Markdown (.md) or plain text (.txt).",
        )
    if len(data) > limits.max_file_bytes:
        raise too_large(filename, len(data), limits)
    if not data.strip():
        raise IngestError("empty", filename, f"{filename} is empty. Upload a file with some text in it.")
    kind = _content_kind(filename, data)
    if ext and ext not in EXTENSIONS[kind] and not (kind in ("text", "markdown") and ext in ("txt", "text", "md", "markdown")):
        right = EXTENSIONS[kind][0]
        raise IngestError(
            "wrong_extension", filename,
            f"{filename} is named .{ext} but its content is {KIND_LABEL[kind]}. "
            f"Rename it to .{right} if that is what it is, then upload it again.",
        )
    if kind == "docx":
        check_zip(filename, data, limits)
    if kind == "text" and ext in ("md", "markdown"):
        kind = "markdown"
    return kind


def too_large(filename: str, size: int, limits: IngestLimits) -> IngestError:
    return IngestError(
        "too_large", filename,
        f"{filename} is {size_text(size)}, over the {size_text(limits.max_file_bytes)} limit per file. "
        "Split it into smaller files.",
    )


def _content_kind(filename: str, data: bytes) -> str:
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            raise IngestError(
                "corrupt", filename,
                f"{filename} looks like a ZIP/DOCX file but it is damaged ({e}). Re-save it in Word and try again.",
            ) from None
        if "word/document.xml" in names:
            return "docx"
        raise IngestError(
            "binary", filename,
            f"{filename} is a ZIP archive but not a Word document. Upload PDF, DOCX, Markdown or text files.",
        )
    if data.startswith(_BINARY_MAGIC[0][0]) and "EncryptedPackage".encode("utf-16-le") in data[:65536]:
        raise IngestError(
            "encrypted", filename,
            f"{filename} is a password-protected Office document. Save a copy without a password and upload that.",
        )
    for prefix, what in _BINARY_MAGIC:
        if data.startswith(prefix):
            raise IngestError("binary", filename, f"{filename} is {what}, not a document with text.")
    if looks_binary(data):
        raise IngestError(
            "binary", filename,
            f"{filename} contains binary data, not text. Upload PDF, DOCX, Markdown or plain text files.",
        )
    return "text"


def bomless_utf16(data: bytes) -> str | None:
    """"utf-16-le" / "utf-16-be" when the bytes look like UTF-16 text without a byte order mark: the high byte
    of (nearly) every character is NUL, the low byte almost never, and the first 8 KiB decode to text."""
    sample = data[:8192]
    sample = sample[: len(sample) // 2 * 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    for encoding, highs, lows in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if highs.count(0) < 0.6 * len(highs) or lows.count(0) > 0.02 * len(lows):
            continue
        text = sample.decode(encoding, errors="replace")
        control = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\x1b")
        if control <= 0.05 * len(text) and text.count("\ufffd") <= 1:
            return encoding
    return None


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters in the first 8 KiB (UTF-16, with or without a BOM, is text)."""
    sample = data[:8192]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or bomless_utf16(sample):
        return False
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return control > 0.05 * len(sample)


def check_zip(filename: str, data: bytes, limits: IngestLimits) -> None:
    """Refuse zip bombs from the central directory alone (entry count, declared sizes, ratio)."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise IngestError("corrupt", filename, f"{filename} is a damaged DOCX ({e}). Re-save it and try again.") from None
    bomb = f"{filename} was refused as a possible decompression bomb"
    if len(infos) > limits.max_zip_entries:
        raise IngestError("zip_bomb", filename, f"{bomb}: it has {len(infos)} entries (limit {limits.max_zip_entries}).")
    total = sum(i.file_size for i in infos)
    if total > limits.max_zip_uncompressed_bytes:
        raise IngestError(
            "zip_bomb", filename,
            f"{bomb}: it would expand to {size_text(total)} (limit {size_text(limits.max_zip_uncompressed_bytes)}).",
        )
    for i in infos:
        if i.file_size > 1024 * 1024 and i.file_size > limits.max_zip_ratio * max(i.compress_size, 1):
            raise IngestError(
                "zip_bomb", filename,
                f"{bomb}: its part {i.filename} expands {i.file_size // max(i.compress_size, 1)}x "
                f"(limit {limits.max_zip_ratio}x).",
            )


def decode_text(filename: str, data: bytes) -> str:
    """Bytes of a text/Markdown file -> str (BOM-aware UTF-8/UTF-16, else UTF-8 with replacement)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if encoding := bomless_utf16(data):
        return data[: len(data) // 2 * 2].decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
