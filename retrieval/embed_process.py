"""The dashboard's embedder in its own process, with one compute thread.

Why: measured on the 2-core CI box, a query embedded by torch with two threads took 12 ms idle but about 80 ms
while an upload's worker embedded on the other core (torch's two threads wait for each other whenever one core
is taken), and the dashboard's own Python threads (generations) compete for its GIL. One thread in a process of
its own embeds a query in 12-20 ms either way, so a search does not wait behind an upload (tests/faults). Bulk
work of the dashboard (repairs, rebuilds) goes through it too, one thread, at about half the speed.

    emb = EmbedderProcess(device=None)   # same interface as embed.Embedder: name, dim, encode(...)
    emb.encode(["Where was Ada born?"])  # -> float32 [1, 384], normalised

Protocol (stdin / stdout of `python -c ... retrieval.embed_worker`): the worker first writes one JSON line
{"ok": true, "device", "dtype"} (or {"ok": false, "message"}); then per request one JSON line {"texts": [...]}
in, and one JSON line {"n": n} followed by n * 384 float32 (little-endian) out, or {"error": sentence}. A worker
that died is started again once per request; the process ends when its stdin closes (this object is closed or
garbage-collected, or the dashboard exits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.config import EMBED_DIM, EMBEDDER_NAME, REPO_ROOT
from retrieval.errors import IngestCancelled, RetrievalError

_BOOT = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from retrieval.embed_worker import main; main()"
REQUEST_TEXTS = 256  # texts per request: progress and stop checks between requests of a long encode
START_TIMEOUT_S = 300.0  # loading torch and the model on a busy 2-core machine


class EmbedderProcess:
    name = EMBEDDER_NAME
    dim = EMBED_DIM

    def __init__(self, device: str | None = None, threads: int = 1):
        self.device_setting = device
        self.threads = threads
        self.device: str | None = None  # known once the worker started
        self.dtype: str | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        n = str(self.threads)
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        self._proc = subprocess.Popen([sys.executable, "-s", "-c", _BOOT, self.device_setting or "auto"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      cwd=REPO_ROOT, env=env)
        hello = self._line()
        if not hello.get("ok"):
            self.close()
            raise RetrievalError(hello.get("message") or "The embedding model could not be loaded.")
        self.device, self.dtype = hello.get("device"), hello.get("dtype")

    def _line(self) -> dict:
        raw = self._proc.stdout.readline()
        if not raw:
            raise OSError("the embedder process ended")
        return json.loads(raw)

    def _request(self, texts: list[str]) -> np.ndarray:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        self._proc.stdin.write(json.dumps({"texts": texts}).encode() + b"\n")
        self._proc.stdin.flush()
        head = self._line()
        if "error" in head:
            raise RetrievalError(str(head["error"]))
        data = self._proc.stdout.read(int(head["n"]) * self.dim * 4)
        if len(data) != len(texts) * self.dim * 4:
            raise OSError("the embedder process ended mid-reply")
        return np.frombuffer(data, dtype="<f4").reshape(len(texts), self.dim).copy()

    def _request_once_more(self, texts: list[str]) -> np.ndarray:
        try:
            return self._request(texts)
        except (OSError, ValueError):  # it died (killed, out of memory): one fresh start
            self.close()
            try:
                return self._request(texts)
            except (OSError, ValueError) as e:
                self.close()
                raise RetrievalError(f"The embedding process stopped ({e}). Try again; if it keeps failing, "
                                     "restart the dashboard.") from None

    def encode(self, texts: Sequence[str], batch_size: int = 32,
               progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """texts -> float32 [len(texts), 384], normalised (embed.Embedder.encode's contract)."""
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for start in range(0, len(texts), REQUEST_TEXTS):
                if should_stop is not None and should_stop():
                    raise IngestCancelled("Stopped before every chunk was embedded; nothing of it was kept.")
                part = texts[start:start + REQUEST_TEXTS]
                out[start:start + len(part)] = self._request_once_more(part)
                if progress:
                    progress(start + len(part), len(texts))
        return out

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # EOF: the worker exits
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)
        proc.stdout.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to clean up with
            pass
