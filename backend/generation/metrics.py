"""Measurement helpers shared by the decode loop and the fake backend (definitions: backend/generation/interface.py).

- `percentile(values, q)`: linear-interpolated percentile (numpy's default), None for no values.
- `tensor_bytes(obj)`: bytes of every torch tensor reachable from a cache object (dicts, lists, tuples,
  attributes), each storage counted once (dedup by data_ptr), so KV / conv / SSM state are counted as they
  actually sit in memory, whatever cache class the installed transformers version uses.
- `state_and_kv_bytes(stepper)`: a cache split into what one sequence keeps whatever its length (conv + SSM
  state of Mamba layers) and what each token adds (K and V of attention layers), measured on a batch-1
  stepper: a hybrid has both, a pure SSM no KV, a transformer no state.
- `PeakMemory`: GPU `max_memory_allocated` after a reset, or CPU peak RSS sampled with psutil.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import psutil


def _torch():
    """torch, imported on first use: the fake backend (UI tests) uses this module without loading torch."""
    import torch

    return torch


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def tensor_bytes(obj: object, _max_depth: int = 6) -> int:
    """Sum of nbytes over distinct tensor storages reachable from `obj` (walks containers and __dict__)."""
    torch = _torch()
    seen_ptrs: set[tuple[str, int]] = set()
    seen_objs: set[int] = set()
    total = 0

    def walk(o: object, depth: int) -> None:
        nonlocal total
        if isinstance(o, torch.Tensor):
            if o.numel() == 0:
                return
            key = (str(o.device), o.untyped_storage().data_ptr())
            if key not in seen_ptrs:
                seen_ptrs.add(key)
                total += o.untyped_storage().nbytes()
            return
        if depth > _max_depth or id(o) in seen_objs or isinstance(o, str | bytes | int | float | bool | type(None)):
            return
        if isinstance(o, torch.nn.Module | torch.device | torch.dtype):
            return  # never count model weights reachable through a back-reference
        seen_objs.add(id(o))
        if isinstance(o, dict):
            for v in o.values():
                walk(v, depth + 1)
        elif isinstance(o, list | tuple | set):
            for v in o:
                walk(v, depth + 1)
        elif hasattr(o, "__dict__"):
            for v in vars(o).values():
                walk(v, depth + 1)

    walk(obj, 0)
    return total


def state_and_kv_bytes(stepper, token_id: int = 0) -> tuple[int, int]:
    """(state_bytes, kv_bytes_per_token) of one sequence: `stepper` (a fresh batch-1 stepper, e.g. an EagerStepper
    on the model's own cache) prefills one token, then steps twice; the growth of `cache_bytes()` over the last
    step is what each token adds, the rest of the cache (after 3 tokens, less 3 x that) is the length-independent
    state. The steps, not the prefill, give the growth: a first KV write may still be a view of a larger
    projection, later ones are copies of their own size (`tensor_bytes` counts storages). The cache is released
    afterwards."""
    torch = _torch()
    ids = torch.full((1, 1), token_id, dtype=torch.long)
    try:
        stepper.prefill(ids)
        stepper.step(ids[:, 0])
        two = stepper.cache_bytes()
        stepper.step(ids[:, 0])
        three = stepper.cache_bytes()
    finally:
        release = getattr(stepper, "release", None)
        if callable(release):
            release()
    per_token = max(0, three - two)
    return max(0, three - 3 * per_token), per_token


class PeakMemory:
    """Track peak memory of one generation. `kind` is "cuda_allocated" or "cpu_rss"."""

    def __init__(self, device: str) -> None:
        torch = _torch()
        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        self.kind = "cuda_allocated" if self.cuda else "cpu_rss"
        self._proc = None if self.cuda else psutil.Process()
        self._peak = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(torch.device(device))
            self._device = torch.device(device)
        else:
            self.sample()

    def sample(self) -> None:
        if self._proc is not None:
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def peak(self) -> int:
        if self.cuda:
            return int(_torch().cuda.max_memory_allocated(self._device))
        self.sample()
        return self._peak
