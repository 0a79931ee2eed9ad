"""Ray plumbing shared by the experiment, benchmark and evaluation shards.

Driver side:
    with session(address) as ray:                 # None / "local": this machine only, on 127.0.0.1
        opts = shard_options(ray, device)         # one GPU per shard where a GPU is used, else one CPU
        control = new_control(ray)                # stop flag, the shards' counts, records in flight
        refs = {shard_task(ray, fn, opts).remote(..., control): shard_id, ...}
        results, errors, stopped = drive(ray, refs, control, on_records, on_counts, should_stop)
Shard side (inside a Ray task):
    where = whereabouts(ray)                      # node, node id, GPU: stamped on every timing row
    done = wait_for(control.start.remote(shard, where))  # record ids a dead attempt already delivered
    poller = Poller(ray, control, shard)          # stop flag and how many shards share this device
    tail = Tail(path)                             # the new lines of the shard's RecordWriter file

Inside a shard every answer from the control actor is awaited with `wait_for` (a future polled with sleeps), never
ray.get: Ray lends a task's CPU to other tasks while it blocks in ray.get, so a second shard would start on a
node whose one CPU a running shard holds, and both would time on shared cores.

Retries: a shard whose worker process dies (killed, out of memory, a crash) is run again by Ray up to
`max_retries` times; the control actor keeps the ids of the records each shard delivered, so a retry skips
finished work and nothing is written twice. A shard that raises (e.g. a model that cannot load) is not
retried: its sentence is the shard's error. Cancel: the driver sets the stop flag; shards stop after the
current instance (or token), hand in what they finished and return.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

INSTALL = ".venv/bin/pip install ray==2.60.0"
DEFAULT_RETRIES = 2
STALE_S = 3.0  # a shard that has not polled the control actor for this long no longer counts as running
FORWARD_ENV = ("HF_HUB_OFFLINE", "TRITON_INTERPRET", "USE_HUB_KERNELS")


class ClusterError(ValueError):
    """Ray is missing or the cluster cannot be reached; the message says what to do (a ValueError, so the
    command line prints it as one line)."""


def import_ray():
    try:
        import ray  # Ray is an optional extra: imported only when a run is sent to a cluster
    except ImportError:
        raise ClusterError(f"Ray is not installed; install it with `{INSTALL}`, or run without --ray.") from None
    return ray


def connect(address: str | None = None):
    """(ray, whether this call connected). `address` None / "" / "local": a cluster of this machine alone,
    bound to 127.0.0.1; "auto": the cluster `ray start` made on this machine; else the head's host:port."""
    local = address in (None, "", "local")
    if local:
        # Ray swaps 127.0.0.1 for the machine's outside address (and listens on every interface) unless told
        # that the cluster is this machine alone; read when ray is first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kw = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if local:
            ray.init(address="local", include_dashboard=False, **kw)
        else:
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ClusterError(f"Could not connect to the Ray cluster at {address} ({first}). Start it with "
                           "`ray start --head` on the head machine and pass its host:port, or leave the address "
                           "out to run on this machine.") from None
    return ray, True


@contextlib.contextmanager
def session(address: str | None = None) -> Iterator:
    """Connected for the block; disconnects only what it connected (a caller's own connection stays)."""
    ray, connected = connect(address)
    try:
        yield ray
    finally:
        if connected:
            ray.shutdown()


def wants_gpu(ray, device: str | None) -> bool:
    """Whether shards ask for a GPU: `cuda` always (a sentence if the cluster has none), `cpu` never,
    auto / None when the cluster has GPUs."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if device and device.startswith("cuda"):
        if not gpus:
            raise ClusterError("The Ray cluster has no GPU; pass --device cpu, or add a node with a GPU "
                               "(`ray start --address HEAD:PORT` on a GPU machine).")
        return True
    return device in (None, "", "auto") and gpus > 0


def shard_options(ray, device: str | None, max_retries: int = DEFAULT_RETRIES) -> tuple[dict, str]:
    """(Ray task options, the device a shard uses): one GPU (and one CPU) or one CPU, retried on worker
    death, spread over the nodes."""
    gpu = wants_gpu(ray, device)
    opts = {"num_cpus": 1, "num_gpus": 1 if gpu else 0, "max_retries": max_retries, "retry_exceptions": False,
            "scheduling_strategy": "SPREAD"}
    return opts, "cuda" if gpu else "cpu"


def shard_task(ray, fn: Callable, opts: dict):
    return ray.remote(fn).options(name=f"ssm-arena:{fn.__name__}", **opts)


def forwarded_env() -> dict[str, str]:
    """The driver's settings a shard runs under (fake backend, kernels, data folder, ...)."""
    return {k: v for k, v in os.environ.items() if k.startswith("SSM_ARENA_") or k in FORWARD_ENV}


def thread_env() -> dict[str, str]:
    """numba's thread pool sized like torch's in this worker (Ray sets OMP_NUM_THREADS to the task's CPUs).
    numba starts its OpenMP pool with one thread per core when it is first imported; next to a shard on the
    other core, those idle threads spin and starve it: two SSM shards on a 2-core machine ran 450 ms per
    few-shot instance instead of 61 ms with NUMBA_NUM_THREADS=1 (2026-12-06). Set before the shard imports the
    CPU kernels; a NUMBA_NUM_THREADS the user set wins."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return {}
    return {"NUMBA_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or "1"}


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """`env` set in os.environ for the length of the block, the previous values (or their absence) restored."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def shard_env(env: dict[str, str]):
    """The driver's settings for the length of one shard (a Ray worker process runs many tasks), and numba's
    thread count matched to the shard's CPUs (`thread_env`)."""
    return environ({**thread_env(), **env})


def record_id(*parts: object) -> str:
    """A stable record id, so a retried shard's rows are the same rows (the store writes an id once)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


def whereabouts(ray) -> dict:
    """Where a shard runs: host, node IP and Ray node id, its GPU (name and ids) if it has one, process id."""
    ctx = ray.get_runtime_context()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    gpu = None
    if gpu_ids:
        try:
            import torch  # only on a GPU shard, to name the card

            gpu = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - the ids still say which card
            gpu = "GPU"
    return {"node": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(), "node_id": ctx.get_node_id(),
            "gpu": gpu, "gpu_ids": gpu_ids, "pid": os.getpid()}


def wait_for(ref, timeout: float = 60.0):
    """The value of `ref` without ray.get's blocking call (see the module docstring: the shard keeps its CPU)."""
    fut, deadline = ref.future(), time.monotonic() + timeout
    while not fut.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"The run's control actor did not answer in {timeout:.0f} s; is the driver still there?")
        time.sleep(0.005)
    return fut.result()


def stamp(row_extra: dict, where: dict, sharing: int, shard: str) -> None:
    """What every timing row of a shard carries: the node and GPU that produced it and how many shards
    shared that device (node CPUs, or the GPU) when it was written."""
    row_extra.update(node=where["node"], node_ip=where["node_ip"], node_id=where["node_id"], gpu=where["gpu"],
                     gpu_ids=where["gpu_ids"], pid=where["pid"], shards_sharing=sharing, shard=shard)


class ShardControl:
    """The run's control actor (no resources; placed on the driver's node): stop flag, records in flight,
    the ids each shard delivered (so a retry skips them), counts for progress, shards per device."""

    def __init__(self) -> None:
        self._stop = False
        self._pending: list[dict] = []
        self._delivered: dict[str, set[str]] = {}
        self._counts: dict[str, int] = {}
        self._running: dict[str, tuple] = {}  # shard -> (device key, when it last polled)
        self._where: dict[str, dict] = {}

    def start(self, shard: str, where: dict) -> list[str]:
        self._running[shard] = ((where["node_id"], tuple(where["gpu_ids"]) or "cpu"), time.monotonic())
        self._where[shard] = where
        return sorted(self._delivered.get(shard, ()))

    def put(self, shard: str, records: list[dict], count_type: str = "prediction") -> int:
        seen = self._delivered.setdefault(shard, set())
        new = [r for r in records if _rid(r) not in seen]
        seen.update(_rid(r) for r in new)
        self._pending += new
        self._counts[shard] = self._counts.get(shard, 0) + sum(r.get("type") == count_type for r in new)
        return len(new)

    def tick(self, shard: str, n: int = 1) -> None:
        self._counts[shard] = self._counts.get(shard, 0) + n

    def end(self, shard: str) -> None:
        self._running.pop(shard, None)

    def poll(self, shard: str) -> dict:
        """Stop flag, and the shards on this shard's device that polled lately (a dead one stops polling)."""
        now = time.monotonic()
        if shard in self._running:
            self._running[shard] = (self._running[shard][0], now)
        key = self._running.get(shard, (None, 0))[0]
        alive = sum(k == key and now - t < STALE_S for k, t in self._running.values())
        return {"stop": self._stop, "sharing": max(1, alive)}

    def stop(self) -> None:
        self._stop = True

    def drain(self) -> tuple[list[dict], dict[str, int], dict[str, dict]]:
        recs, self._pending = self._pending, []
        return recs, dict(self._counts), dict(self._where)


def _rid(rec: dict) -> str:
    return str(rec.get("prediction_id") or rec.get("measurement_id") or json.dumps(rec, sort_keys=True))


def new_control(ray):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(ShardControl).options(num_cpus=0, scheduling_strategy=here).remote()


class Poller:
    """In a shard: asks the control actor every `every_s` seconds whether to stop and how many shards share
    this device; `stop` is a threading.Event the generation loop polls between tokens."""

    def __init__(self, ray, control, shard: str, every_s: float = 0.5) -> None:
        self.ray, self.control, self.shard, self.every_s = ray, control, shard, every_s
        self.stop, self.sharing = threading.Event(), 1
        self._end = threading.Event()
        self._poll()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"poll-{shard}")
        self._thread.start()

    def _poll(self) -> None:
        state = wait_for(self.control.poll.remote(self.shard), timeout=30)
        self.sharing = state["sharing"]
        if state["stop"]:
            self.stop.set()

    def _loop(self) -> None:
        while not self._end.wait(self.every_s):
            with contextlib.suppress(Exception):  # the driver going away ends the task anyway
                self._poll()

    def close(self) -> None:
        self._end.set()
        self._thread.join(timeout=5)
        self.control.end.remote(self.shard)  # no longer on its device (the driver says so too, later)


class Tail:
    """The lines a RecordWriter appended to `path` since the last call, as records."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = Path(path), 0

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip()]


def shard_file(run_id: str, shard: str) -> Path:
    """A shard's node-local JSONL file (RecordWriter format)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in shard)
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "ssm-arena-shards" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe}.{os.getpid()}.jsonl"


def describe(exc: BaseException, max_retries: int, then: str = "resume the run to redo the rest") -> str:
    """A shard's failure as one sentence (`then`: what the user can do about a dead worker)."""
    name = type(exc).__name__
    if name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ActorDiedError"):
        return (f"its worker process died {max_retries + 1} time(s) (killed, out of memory or a crash; the last: "
                f"{name}); {then}")
    if name == "TaskCancelledError":
        return "cancelled"
    cause = getattr(exc, "cause", None) or exc
    text = (str(cause).strip().splitlines() or [""])[0][:300]
    return f"{type(cause).__name__}: {text}"


def drive(ray, refs: dict, control, *, on_records: Callable[[list[dict]], None],
          on_counts: Callable[[dict, dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
          max_retries: int = DEFAULT_RETRIES, poll_s: float = 0.5, grace_s: float = 60.0,
          then: str = "resume the run to redo the rest") -> tuple[dict, dict, bool]:
    """Wait for the shards (`refs`: object ref -> shard id) while handing their records to `on_records`
    (the driver's store writes) and their counts to `on_counts(counts, where)`. A stop (should_stop, or
    Ctrl-C: KeyboardInterrupt) sets the control's flag; shards still running `grace_s` later are cancelled.
    Returns (results by shard, error sentences by shard, whether a stop was asked)."""
    pending = dict(refs)
    results: dict[str, object] = {}
    errors: dict[str, str] = {}
    stopped, deadline = False, None

    def collect() -> None:
        records, counts, where = ray.get(control.drain.remote())
        if records:
            on_records(records)
        if on_counts:
            on_counts(counts, where)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=poll_s)
            collect()
            for ref in ready:
                shard = pending.pop(ref)
                control.end.remote(shard)
                try:
                    results[shard] = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a shard's failure is recorded, the others go on
                    errors[shard] = describe(e, max_retries, then)
            if not stopped and should_stop is not None and should_stop():
                stopped, deadline = True, time.monotonic() + grace_s
                control.stop.remote()
            if deadline is not None and time.monotonic() > deadline:
                for ref in pending:
                    ray.cancel(ref, force=True)
                deadline = None
        collect()
    except BaseException:  # Ctrl-C twice, Streamlit stopping the script: stop the shards, keep what arrived
        control.stop.remote()
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            collect()
        raise
    return results, errors, stopped
