"""Planning pieces of the trio's training: one shared token-stream file, and a step-count rendezvous.

The trio trains in separate processes on one GPU (each model alone in its process, all at once: the small
models leave most of the GPU idle, so running them side by side costs each little). They must still see
the same tokens in the same order for the same number of steps with the same schedule, so:

- `stream_file`: the token stream is generated once (deterministic for data_seed and n_tokens) and saved
  as .npy; every process memory-maps the same file.
- `Rendezvous`: each process trains its first `plan_after` steps (inside warmup, so the step count is not
  needed yet), posts its measured ms per step, and waits for the others. Every process then computes the
  same total from the same posted numbers: the most steps the *slowest* model fits into what is left of
  the time budget. The chosen total is recorded, so `--steps N` reproduces the schedule exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np


def load_or_make_stream(path: str, make) -> np.ndarray:
    """The stream saved at `path` (memory-mapped), or `make()` saved there first (write aside, rename)."""
    p = Path(path)
    if p.exists():
        return np.load(p, mmap_mode="r")
    stream = make()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, stream)
    os.replace(tmp, p)
    return stream


def plan_total(posts: list[dict], budget_s: float, plan_after: int, margin: float = 0.97) -> int:
    """Steps every model can run: plan_after + what the slowest fits into the budget left after the
    latest-finishing probe (times `margin` for safety). posts: [{"elapsed_s", "ms_per_step"}, ...]."""
    if not posts:
        raise ValueError("no posted step times to plan from")
    slowest = max(p["ms_per_step"] for p in posts)
    latest = max(p["elapsed_s"] for p in posts)
    left_s = max(0.0, budget_s - latest) * margin
    return plan_after + int(left_s * 1000.0 / max(slowest, 1e-6))


class Rendezvous:
    """File-based meeting point of the training processes (one JSON file per model in `folder`)."""

    def __init__(self, folder: str, expected: list[str], timeout_s: float = 600.0):
        self.folder, self.expected, self.timeout_s = Path(folder), list(expected), timeout_s
        self.folder.mkdir(parents=True, exist_ok=True)

    def post(self, name: str, elapsed_s: float, ms_per_step: float, **extra) -> None:
        rec = {"model": name, "elapsed_s": round(elapsed_s, 3), "ms_per_step": round(ms_per_step, 3), **extra}
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, self.folder / f"{name}.json")

    def gather(self) -> list[dict]:
        """Wait until every expected model has posted; return the posts in `expected` order."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            missing = [n for n in self.expected if not (self.folder / f"{n}.json").exists()]
            if not missing:
                return [json.loads((self.folder / f"{n}.json").read_text()) for n in self.expected]
            if time.monotonic() > deadline:
                raise TimeoutError(f"Training rendezvous in {self.folder}: no step time from {', '.join(missing)} "
                                   f"after {self.timeout_s:.0f}s (did that process crash? see its log).")
            time.sleep(0.2)
