"""Background ingest jobs: an upload is staged to disk and ingested by another process, which reports progress
in a file. The dashboard's process never embeds an upload, so its searches never wait behind one.

    job = create_job("notes", [("a.pdf", b"..."), ...], limits)   # checks the upload, stages it: data/jobs/<id>/
    # the owner starts `python -m backend rag ingest-job <job>` (backend/rag.py: start_ingest)
    read_status(job)  -> {"state", "files": [...], "chunks_done", "chunks_total", "rate", "eta_s", ...}
    request_cancel(job)                                               # the worker stops between two batches
    run_job(job, retriever)                                           # the worker's side (the CLI calls it)

A job folder holds `manifest.json` (collection, data folder, the files' names and sizes), `files/<n>` (the
staged bytes, deleted when the job ends), `status.json` (written by the worker, replaced atomically so a
reader never sees half of it), `cancel` (present once cancel was asked) and `log.txt` (the worker's output).
State: queued -> running -> done | cancelled | failed; a worker that died without saying so reads as
`stopped` (its process is gone), and what it committed is whole (ingest.py), the index is repaired by
recovery.recover at the next open.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import psutil

from retrieval.config import IngestLimits, check_collection_name, data_dir
from retrieval.errors import RetrievalError
from retrieval.ingest import FileEvent, check_upload
from store.errors import StoreError  # errors only: no duckdb is imported

FINISHED = ("done", "cancelled", "failed", "stopped")
KEEP_FINISHED_S = 24 * 3600  # finished job folders older than this are removed when a new job starts
WORKER_NICE = 19  # where SCHED_IDLE is not available: the lowest priority


def jobs_dir(root: Path | None = None) -> Path:
    return (Path(root) if root is not None else data_dir()) / "jobs"


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def create_job(collection: str, files: list[tuple[str, bytes]], limits: IngestLimits | None = None,
               root: Path | None = None) -> Path:
    """Check the upload (count, total bytes) and the collection name, stage the files; returns the job folder."""
    limits = limits or IngestLimits()
    check_collection_name(collection)
    check_upload([(name, len(data)) for name, data in files], limits)
    base = jobs_dir(root)
    cleanup(base)
    job = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    (job / "files").mkdir(parents=True)
    for i, (_, data) in enumerate(files):
        (job / "files" / str(i)).write_bytes(data)  # numbered: an uploaded name never becomes a path
    manifest = {"collection": collection, "data_dir": str(Path(root) if root is not None else data_dir()),
                "files": [{"name": name, "size": len(data)} for name, data in files], "created": time.time()}
    _write_json(job / "manifest.json", manifest)
    _write_json(job / "status.json", _initial_status(manifest))
    return job


def _initial_status(manifest: dict) -> dict:
    return {"state": "queued", "collection": manifest["collection"], "pid": None, "started": None,
            "updated": time.time(), "error": None, "rate": None, "eta_s": None, "chunks_done": 0,
            "chunks_total": None, "files": [{"name": f["name"], "size": f["size"], "state": "waiting",
                                             "chunks_done": 0, "chunks_total": None, "error": None}
                                            for f in manifest["files"]]}


def read_manifest(job: Path) -> dict:
    try:
        return json.loads((Path(job) / "manifest.json").read_text())
    except (OSError, ValueError):
        raise RetrievalError(f"{job} is not an upload job folder (it has no readable manifest.json).") from None


def request_cancel(job: Path) -> None:
    (Path(job) / "cancel").touch()


def cancel_requested(job: Path) -> bool:
    return (Path(job) / "cancel").exists()


def _alive(status: dict) -> bool:
    pid, started = status.get("pid"), status.get("started")
    if not pid:
        return True  # not started yet (the owner is starting it)
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - float(started or 0)) < 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def read_status(job: Path) -> dict:
    """The job's status; a running job whose worker is gone reads as `stopped`."""
    job = Path(job)
    try:
        status = json.loads((job / "status.json").read_text())
    except (OSError, ValueError):
        raise RetrievalError(f"The upload job {job.name} has no readable status; it was removed.") from None
    status["job"] = str(job)
    status["id"] = job.name
    if status["state"] in ("queued", "running") and not _alive(status):
        status["state"] = "stopped"
        status["error"] = ("The upload stopped unexpectedly (its process ended). Every file it reported as added "
                           "is complete; add the others again.")
    elif status["state"] == "queued" and status.get("pid") is None and time.time() - status["updated"] > 120:
        status["state"], status["error"] = "stopped", "The upload never started; add the files again."
    return status


def list_jobs(root: Path | None = None, collection: str | None = None) -> list[dict]:
    """Every job's status (newest first), optionally of one collection."""
    base = jobs_dir(root)
    out = []
    for job in sorted(base.iterdir(), reverse=True) if base.is_dir() else []:
        try:
            status = read_status(job)
        except RetrievalError:
            continue
        if collection is None or status["collection"] == collection:
            out.append(status)
    return out


def cleanup(base: Path, keep_s: float = KEEP_FINISHED_S) -> None:
    for job in base.iterdir() if base.is_dir() else []:
        try:
            status = read_status(job)
        except RetrievalError:
            status = {"state": "stopped", "updated": 0}
        if status["state"] in FINISHED and time.time() - status.get("updated", 0) > keep_s:
            shutil.rmtree(job, ignore_errors=True)


class _Progress:
    """Turns FileEvents into status.json: per-file chunks, the embedding rate and the time left."""

    def __init__(self, job: Path, status: dict, min_interval_s: float = 0.5):
        self.job, self.status, self.min_interval_s = job, status, min_interval_s
        self.last_write = 0.0
        self.embed_s = 0.0  # time spent embedding, over the whole job
        self.embedded = 0
        self._t = None

    def __call__(self, ev: FileEvent) -> None:
        f = self.status["files"][ev.index]
        now = time.monotonic()
        if ev.state == "embedding" and self._t is not None and ev.chunks_done > f["chunks_done"]:
            self.embed_s += now - self._t
            self.embedded += ev.chunks_done - f["chunks_done"]
        self._t = now if ev.state == "embedding" else None
        f["state"], f["chunks_done"], f["error"] = ev.state, ev.chunks_done, ev.error
        if ev.chunks_total:
            f["chunks_total"] = ev.chunks_total
        self.write(force=ev.state != "embedding")

    def write(self, force: bool = True) -> None:
        if not force and time.monotonic() - self.last_write < self.min_interval_s:
            return
        files = self.status["files"]
        known = [f for f in files if f["chunks_total"] is not None and f["state"] not in ("failed", "cancelled")]
        done = sum(f["chunks_done"] for f in known)
        total = sum(f["chunks_total"] for f in known)
        rate = self.embedded / self.embed_s if self.embed_s > 0 else None
        self.status.update(chunks_done=done, chunks_total=total or None, updated=time.time(),
                           rate=round(rate, 2) if rate else None,
                           eta_s=round((total - done) / rate, 1) if rate else None)
        _write_json(self.job / "status.json", self.status)
        self.last_write = time.monotonic()


def worker_threads() -> int:
    """Compute threads for the worker: every core but one, which stays free for the dashboard's searches."""
    return max(1, (os.cpu_count() or 2) - 1)


def yield_cpu(nice: int = WORKER_NICE) -> None:
    """This process runs only when the CPU has nothing else to do (Linux SCHED_IDLE), else at the lowest
    priority: a search or a generation in the dashboard never waits for an upload's embedding."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: lower the priority instead
        try:
            os.nice(nice)
        except OSError:
            pass  # not allowed either: the job still runs, at normal priority


def run_job(job: Path, retriever, nice: int = WORKER_NICE) -> dict:
    """Ingest a staged job (the worker process): progress in status.json, cancel between batches; returns the
    final status. Each document is committed whole (ingest.py); the staged files are deleted at the end."""
    job = Path(job)
    manifest = read_manifest(job)
    status = _initial_status(manifest)
    me = psutil.Process()
    status.update(state="running", pid=me.pid, started=me.create_time())
    progress = _Progress(job, status)
    progress.write()
    if nice:
        yield_cpu(nice)
    try:
        files = [(f["name"], (job / "files" / str(i)).read_bytes()) for i, f in enumerate(manifest["files"])]
        report = retriever.add_files(manifest["collection"], files, on_file=progress,
                                     should_stop=lambda: cancel_requested(job))
        for f, result in zip(status["files"], report.files, strict=True):
            if result.error is None:
                f.update(state="added", n_chunks=result.n_chunks, doc_id=result.doc_id)
            else:
                f.update(state="cancelled" if result.error_kind == "cancelled" else "failed", error=result.error)
        status["state"] = "cancelled" if report.cancelled else "done"
    except Exception as e:  # noqa: BLE001 - the page must learn why, as a sentence, from the status file
        status["state"] = "failed"
        status["error"] = str(e) if isinstance(e, (RetrievalError, StoreError)) else (
            f"The upload failed ({type(e).__name__}: {e}). The files it reported as added are complete.")
    finally:
        shutil.rmtree(job / "files", ignore_errors=True)
        progress.write()
    return status
