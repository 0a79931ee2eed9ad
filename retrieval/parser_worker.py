"""The parser process (started by sandbox.py): limits itself, then parses one request after another.

Reads requests from stdin and writes JSON replies to stdout (protocol in sandbox.py). Exits at EOF.
"""

from __future__ import annotations

import json
import sys


def _limit_resources(memory_bytes: int, cpu_seconds: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    except (ImportError, ValueError, OSError):  # not available here: the parent's timeout still holds
        pass


def _handle(header: dict, data: bytes) -> dict:
    # imported after main() has set this process's memory and CPU limits: the parsers load under them
    from retrieval.config import IngestLimits
    from retrieval.errors import IngestError
    from retrieval.parse import parse_bytes

    filename = str(header["filename"])
    try:
        doc = parse_bytes(filename, header["kind"], data, IngestLimits(**header["limits"]))
        return {"ok": True, "pages": doc.pages, "n_pages": doc.n_pages}
    except IngestError as e:
        return {"ok": False, "kind": e.kind, "message": str(e)}
    except MemoryError:
        return {"ok": False, "kind": "crashed",
                "message": f"{filename} needed more memory than the parser may use. Split or simplify it."}
    except RecursionError:
        return {"ok": False, "kind": "corrupt", "message": f"{filename} is nested too deeply to read. It may be damaged."}
    except Exception as e:  # noqa: BLE001 - any parser failure is a damaged file to the user
        return {"ok": False, "kind": "corrupt",
                "message": f"{filename} could not be read ({type(e).__name__}). It may be damaged; re-save it."}


def main() -> None:
    _limit_resources(int(sys.argv[1]), int(sys.argv[2]))
    try:  # load the parsers up front, under the limits: if they cannot load, no file can be parsed here
        import docx  # noqa: F401
        import pypdf  # noqa: F401

        from retrieval.parse import parse_bytes  # noqa: F401
    except BaseException:  # noqa: BLE001 - e.g. MemoryError / ImportError under RLIMIT_AS
        sys.exit(3)  # the parent reads EOF and reports the file as "crashed"
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        header = json.loads(line)
        data = stdin.read(int(header["size"]))
        reply = _handle(header, data)
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()
