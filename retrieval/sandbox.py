"""Run PDF/DOCX parsing in a separate Python process with a wall-clock timeout.

A hostile or broken file can loop forever, eat memory or crash the parser (pypdf: "we consider it the
task of the library user to catch exceptions"); here it can only cost its own timeout. One parser
process (`python -c ... retrieval.parser_worker`, started with subprocess so it never re-imports the
app's `__main__` the way multiprocessing's spawn does) serves a batch of files in turn; if a file times
out or kills the process, that file gets an IngestError ("timeout" / "crashed") and a fresh process
takes the remaining files. The worker limits its own address space (RLIMIT_AS) and CPU time
(RLIMIT_CPU), so it dies even if this process does. Replies are JSON (never pickle: a compromised
parser must not be able to run code here).

Protocol: request = one JSON line {"filename", "kind", "limits", "size"} then `size` raw bytes;
reply = one JSON line {"ok": true, "pages": [[page, text], ...], "n_pages"} or {"ok": false, "kind", "message"}.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from retrieval.config import REPO_ROOT, IngestLimits
from retrieval.errors import INGEST_ERROR_KINDS, IngestError
from retrieval.parse import ParsedDocument, parse_bytes

_SEMAPHORE = threading.BoundedSemaphore(IngestLimits().max_concurrent_parses)
_BOOT = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from retrieval.parser_worker import main; main()"


class _ParserProcess:
    def __init__(self, limits: IngestLimits, n_files: int):
        cpu = int(limits.parse_timeout_s * n_files) + 30
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-c", _BOOT, str(limits.parser_memory_bytes), str(cpu)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(REPO_ROOT),
        )

    def parse(self, filename: str, kind: str, data: bytes, limits: IngestLimits) -> ParsedDocument:
        crashed = IngestError(
            "crashed", filename,
            f"The parser stopped while reading {filename} (it ran out of memory or crashed). "
            "The file may be malformed; try re-saving or splitting it.",
        )
        header = {"filename": filename, "kind": kind, "limits": asdict(limits), "size": len(data)}
        try:
            self.proc.stdin.write(json.dumps(header).encode() + b"\n" + data)
            self.proc.stdin.flush()
            line = self._read_line(time.monotonic() + limits.parse_timeout_s)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.kill()
            raise crashed from None
        if line is None:
            self.kill()
            raise IngestError(
                "timeout", filename,
                f"Reading {filename} took longer than {limits.parse_timeout_s:g} s and was stopped. "
                "The file may be malformed or too complex; try re-saving or splitting it.",
            )
        try:
            reply = json.loads(line)
        except ValueError:
            self.kill()
            raise crashed from None
        if not line or not isinstance(reply, dict):
            self.kill()
            raise crashed
        if reply.get("ok"):
            pages = [(p if p is None else int(p), str(t)) for p, t in reply["pages"]]
            return ParsedDocument(filename, kind, pages, reply.get("n_pages"))
        err_kind = reply.get("kind") if reply.get("kind") in INGEST_ERROR_KINDS else "corrupt"
        raise IngestError(err_kind, filename, str(reply.get("message", f"{filename} could not be read.")))

    def _read_line(self, deadline: float) -> bytes | None:
        """One reply line, or None when the deadline passes first. b"" if the process ended."""
        out = self.proc.stdout
        buf = bytearray()
        fd = out.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            piece = _os_read(fd)
            if not piece:
                return bytes(buf)  # EOF: the process died (b"" -> crashed)
            buf += piece
            if buf.endswith(b"\n"):
                return bytes(buf)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # EOF: the worker exits
            self.proc.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _os_read(fd: int) -> bytes:
    return os.read(fd, 1 << 20)


def parse_isolated(
    items: list[tuple[str, str, bytes]],
    limits: IngestLimits,
    on_file: Callable[[int], None] | None = None,
) -> list[ParsedDocument | IngestError]:
    """Parse (filename, kind, data) items; PDF/DOCX in the parser process, text in this one.

    Returns one ParsedDocument or IngestError per item, in order; never raises for a bad file.
    `on_file(i)` is called after item i is done (progress).
    """
    out: list[ParsedDocument | IngestError] = []
    worker: _ParserProcess | None = None
    n_isolated = sum(1 for _, kind, _ in items if kind in ("pdf", "docx"))
    with _SEMAPHORE:
        try:
            for i, (filename, kind, data) in enumerate(items):
                try:
                    if kind in ("pdf", "docx"):
                        if worker is None or not worker.alive:
                            worker = _ParserProcess(limits, n_isolated)
                        out.append(worker.parse(filename, kind, data, limits))
                    else:  # decoding size-capped text cannot hang; no process needed
                        out.append(parse_bytes(filename, kind, data, limits))
                except IngestError as e:
                    out.append(e)
                if on_file:
                    on_file(i)
        finally:
            if worker is not None:
                worker.close()
    return out
