"""What every recorded run carries: git sha, library versions, device name, hostname."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from store import RecordWriter

REPO_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """HEAD of this checkout; where the tree was copied without .git (a GPU machine), SSM_ARENA_GIT_SHA."""
    if os.environ.get("SSM_ARENA_GIT_SHA"):
        return os.environ["SSM_ARENA_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_label(device: str | None = None) -> str:
    """GPU name for cuda devices (also ROCm), else the CPU model."""
    try:
        import torch

        auto = device is None or str(device) == "auto"
        if (auto or str(device).startswith("cuda")) and torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device("cuda" if auto else device))
    except Exception:  # no torch / broken driver: fall back to the CPU name
        pass
    return cpu_name()


def run_meta(device: str | None = None) -> dict:
    meta = {
        "git_sha": git_sha(),
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "triton": _version("triton"),
        "device": device or "auto",
        "device_name": device_label(device),
    }
    try:
        import torch

        meta["cuda"] = torch.version.cuda
        meta["hip"] = getattr(torch.version, "hip", None)
    except ImportError:  # pragma: no cover
        pass
    return meta


def write_jsonl_run(path: str | os.PathLike, kind: str, config: dict, rows: list[dict], summary: dict,
                    name: str | None = None) -> str:
    """One completed run with `rows` as its measurements, appended to `path` as store.RecordWriter JSONL (the
    GPU machines' format: no duckdb needed); returns the run id. Run metadata is best effort there."""
    try:
        meta = run_meta()
    except Exception as e:  # a bare GPU machine may lack what run_meta reads; the rows still count
        meta = {"run_meta_error": str(e)}
    w = RecordWriter(path)
    run_id = w.start_run(kind, config, meta, name=name)
    w.add_measurements(run_id, rows)
    w.finish_run(run_id, "completed", summary)
    return run_id
