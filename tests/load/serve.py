"""`streamlit run app.py` for the load test and the fault suite: its own process group on a free loopback port,
a temporary store / data / results folder, the repository's .streamlit/config.toml (no address override: the
config's 127.0.0.1 is what is tested), /_stcore/health polled, the whole group killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(tmp: Path, fake: bool = True, timeout_s: float = 180, **extra_env: str):
    """Yields (url, process, log path)."""
    port = free_port()
    (tmp / "results").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SSM_ARENA_FAKE", "SSM_ARENA_FAKE_DELAY")}
    env.update(SSM_ARENA_DB=str(tmp / "arena.duckdb"), SSM_ARENA_DATA=str(tmp / "data"),
               SSM_ARENA_RESULTS=str(tmp / "results"), SSM_ARENA_DEVICE="cpu", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1", **({"SSM_ARENA_FAKE": "1"} if fake else {}), **extra_env)
    log = tmp / "streamlit.log"
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer in {timeout_s} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, proc, log
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
