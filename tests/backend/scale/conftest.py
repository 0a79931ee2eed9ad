"""A two-node Ray cluster on this machine, started with `ray start` (a head and a worker, each with its own
resources), bound to 127.0.0.1 only, and stopped by the fixture that started it (also when a test fails).

Loopback only: Ray's command line swaps the literal 127.0.0.1 / localhost for the machine's outside address
(and its servers then listen on every interface). The head keeps 127.0.0.1 with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray's switch for one-machine clusters); the worker joins through another
name of 127.0.0.1 (this machine's host name, or an /etc/hosts alias), so Ray takes it as given, and every
node of the cluster is 127.0.0.1. `test_cluster_listens_on_loopback_only` checks the listening sockets.
Token authentication is on, with a token made for the session (head, worker and this driver share it), so a
token Ray may have saved in ~/.ray does not decide it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RAY = str(Path(sys.executable).with_name("ray"))


def loopback_alias() -> str | None:
    """A name for 127.0.0.1 that is not literally localhost / 127.0.0.1 (Ray rewrites those)."""
    names = [socket.gethostname()]
    with open("/etc/hosts") as f:
        for line in f:
            parts = line.split("#")[0].split()
            if parts and parts[0] == "127.0.0.1":
                names += parts[1:]
    for name in names:
        if name in ("localhost", "127.0.0.1"):
            continue
        try:
            if socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` drains the node and ends its processes; what is left of the process
    group (started with its own session, so its id is the group's) is then killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10) if proc.poll() is None else None


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not open port {port} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="package")  # up for this folder's tests only, not for the rest of the suite
def ray_cluster():
    """{"address", "head", "worker", "temp_dir", "pgids"}: a connected two-node cluster (ray.init done)."""
    alias = loopback_alias()
    if alias is None:
        pytest.skip("This machine has no name for 127.0.0.1 besides localhost (host name or /etc/hosts alias); "
                    "Ray would move a second node to the outside address, so the two-node test cannot stay on "
                    "loopback.")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)  # before ray is imported: this driver authenticates with the session's token
    import ray

    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000", "--disable-usage-stats", "--block"]
    procs: list[subprocess.Popen] = []
    try:
        head_log = temp / "head.log"
        procs.append(subprocess.Popen(
            [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
             '--resources={"head_node": 1}', *common], cwd=ROOT, start_new_session=True,
            env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, stdout=head_log.open("w"),
            stderr=subprocess.STDOUT))
        _wait_port(port, procs[0], head_log)
        worker_log = temp / "worker.log"
        procs.append(subprocess.Popen(
            [RAY, "start", f"--address={alias}:{port}", '--resources={"worker_node": 1}', *common], cwd=ROOT,
            start_new_session=True, env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT))
        ray.init(address=f"{alias}:{port}", log_to_driver=False)
        deadline = time.monotonic() + 90
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            if time.monotonic() > deadline or procs[1].poll() is not None:
                raise RuntimeError(f"the worker node did not join:\n{worker_log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"address": f"{alias}:{port}", "head": procs[0], "worker": procs[1], "temp_dir": temp,
               "pgids": [p.pid for p in procs]}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
