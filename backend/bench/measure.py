"""One measured benchmark point, the way design.md defines the metrics.

A point is (model, batch B, prompt length L, new tokens N, stepper). Protocol:
- warm-up (`warmup` times): prefill + a few steps on the same stepper (captures CUDA graphs, autotunes
  Triton kernels, fills allocator pools); not timed.
- `repeats` timed runs, each: reset the peak-memory counter, synchronise, prefill the [B, L] prompt,
  greedy argmax -> first token ids (TTFT), then N-1 steps, synchronising after each (a streaming loop
  needs each token on the host), per-step times -> TPOT p50 / p90.
- Each metric is the median over the repeats. Prompt ids are random (seeded): speed does not depend
  on the token values.

Both families run exactly this loop; only the stepper differs (its `path` is recorded).
`measure_hf_generate` times plain `model.generate()` as a separately labelled baseline row.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

import torch

from backend.device import synchronize
from backend.generation.metrics import PeakMemory, percentile

WARMUP_STEPS = 4  # decode steps in each warm-up run


def model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _prompt(batch: int, length: int, vocab: int, device: torch.device, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g).to(device)


def _vocab(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def _one_run(stepper, ids: torch.Tensor, new_tokens: int, device: torch.device) -> dict:
    mem = PeakMemory(str(device))
    synchronize(device)
    t0 = time.perf_counter()
    logits = stepper.prefill(ids)
    synchronize(device)
    t_prefill = time.perf_counter()
    tok = logits.argmax(-1)
    synchronize(device)
    t_first = time.perf_counter()
    steps: list[float] = []
    last = t_first
    for _ in range(new_tokens - 1):
        logits = stepper.step(tok)
        tok = logits.argmax(-1)
        synchronize(device)
        now = time.perf_counter()
        steps.append(now - last)
        last = now
        mem.sample()
    decode_s = last - t_first
    return {
        "prefill_ms": (t_prefill - t0) * 1e3,
        "ttft_ms": (t_first - t0) * 1e3,
        "tpot_ms": percentile([s * 1e3 for s in steps], 50),
        "tpot_p90_ms": percentile([s * 1e3 for s in steps], 90),
        "decode_s": decode_s,
        "total_ms": (last - t0) * 1e3,
        "peak_mem_bytes": mem.peak(),
        "peak_mem_kind": mem.kind,
        "cache_bytes": int(stepper.cache_bytes()),
        "cache_alloc_bytes": _alloc_bytes(stepper),
    }


def _alloc_bytes(stepper) -> int | None:
    """What a stepper's cache tensors hold allocated (a static KV cache: every slot, written or not);
    None for steppers that only report bytes in use."""
    alloc = getattr(stepper, "cache_alloc_bytes", None)
    return int(alloc()) if callable(alloc) else None


def _median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def measure_point(
    model,
    make_stepper: Callable[[], object],
    *,
    batch: int,
    prompt_len: int,
    new_tokens: int,
    device: torch.device,
    warmup: int = 1,
    repeats: int = 3,
    seed: int = 0,
    slow_run_s: float = 5.0,
) -> dict:
    """Measure one point; returns the metric columns of a measurement row (see module docstring).

    When a warm-up run takes longer than `slow_run_s`, only one timed repeat is made (the row's
    `repeats` says so). Out-of-memory errors propagate to the caller (the sweep records them)."""
    if new_tokens < 2:
        raise ValueError("A benchmark point needs at least 2 new tokens (TPOT is measured after the first).")
    ids = _prompt(batch, prompt_len, _vocab(model), device, seed)
    stepper = make_stepper()
    try:
        t_setup = time.perf_counter()
        with torch.inference_mode():
            for _ in range(warmup):
                logits = stepper.prefill(ids)
                tok = logits.argmax(-1)
                for _ in range(min(WARMUP_STEPS, new_tokens - 1)):
                    tok = stepper.step(tok).argmax(-1)
                synchronize(device)
            warm_s = time.perf_counter() - t_setup
            n_rep = 1 if warm_s > slow_run_s else repeats
            runs = [_one_run(stepper, ids, new_tokens, device) for _ in range(n_rep)]
        decode_s = _median(runs, "decode_s")
        total_ms = _median(runs, "total_ms")
        per_seq = (new_tokens - 1) / decode_s if decode_s else None
        return {
            "batch": batch,
            "prompt_tokens": prompt_len,
            "new_tokens": new_tokens,
            "path": str(getattr(stepper, "path", "unknown")),
            "cache_kind": str(getattr(stepper, "cache_kind", "none")),
            "prefill_ms": _median(runs, "prefill_ms"),
            "ttft_ms": _median(runs, "ttft_ms"),
            "tpot_ms": _median(runs, "tpot_ms"),
            "tpot_p90_ms": _median(runs, "tpot_p90_ms"),
            "decode_tok_s": per_seq,
            "decode_tok_s_batch": per_seq * batch if per_seq else None,
            "total_ms": total_ms,
            "e2e_tok_s": batch * new_tokens / (total_ms / 1e3) if total_ms else None,
            "peak_mem_bytes": int(max(r["peak_mem_bytes"] for r in runs)),
            "peak_mem_kind": runs[0]["peak_mem_kind"],
            "cache_bytes": runs[-1]["cache_bytes"],
            "cache_alloc_bytes": runs[-1]["cache_alloc_bytes"],
            "warmup": warmup,
            "repeats": n_rep,
            "warmup_ms": warm_s * 1e3,
        }
    finally:
        close = getattr(stepper, "close", None)
        if callable(close):
            close()
        del stepper
        free_memory(device)


class _TimingStreamer:
    """HF streamer hook: `put` is called with the prompt, then once per generated token."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def measure_hf_generate(
    model,
    *,
    prompt_len: int,
    new_tokens: int,
    device: torch.device,
    warmup: int = 1,
    repeats: int = 3,
    seed: int = 0,
) -> dict:
    """Plain `model.generate()` (greedy, batch 1, the model's default cache): the out-of-the-box
    baseline. TTFT and per-token times come from a streamer hook; prefill_ms is reported as TTFT."""
    ids = _prompt(1, prompt_len, _vocab(model), device, seed)
    mask = torch.ones_like(ids)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, attention_mask=mask,
              pad_token_id=0)
    runs = []
    with torch.inference_mode():
        for _ in range(warmup):
            model.generate(ids, **{**kw, "max_new_tokens": min(4, new_tokens), "min_new_tokens": min(4, new_tokens)})
        for _ in range(repeats):
            mem = PeakMemory(str(device))
            streamer = _TimingStreamer()
            synchronize(device)
            t0 = time.perf_counter()
            model.generate(ids, streamer=streamer, **kw)
            synchronize(device)
            t_end = time.perf_counter()
            ts = streamer.times
            steps = [(b - a) * 1e3 for a, b in zip(ts, ts[1:], strict=False)]
            runs.append({
                "ttft_ms": (ts[0] - t0) * 1e3 if ts else None,
                "tpot_ms": percentile(steps, 50),
                "tpot_p90_ms": percentile(steps, 90),
                "decode_s": (ts[-1] - ts[0]) if len(ts) > 1 else None,
                "total_ms": (t_end - t0) * 1e3,
                "peak_mem_bytes": mem.peak(),
                "peak_mem_kind": mem.kind,
            })
    decode_s = _median(runs, "decode_s")
    per_seq = (new_tokens - 1) / decode_s if decode_s else None
    total_ms = _median(runs, "total_ms")
    free_memory(device)
    return {
        "batch": 1,
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "path": "hf-generate",
        "cache_kind": "none",
        "prefill_ms": _median(runs, "ttft_ms"),
        "ttft_ms": _median(runs, "ttft_ms"),
        "tpot_ms": _median(runs, "tpot_ms"),
        "tpot_p90_ms": _median(runs, "tpot_p90_ms"),
        "decode_tok_s": per_seq,
        "decode_tok_s_batch": per_seq,
        "total_ms": total_ms,
        "e2e_tok_s": new_tokens / (total_ms / 1e3) if total_ms else None,
        "peak_mem_bytes": int(max(r["peak_mem_bytes"] for r in runs)),
        "peak_mem_kind": runs[0]["peak_mem_kind"],
        "cache_bytes": None,
        "warmup": warmup,
        "repeats": repeats,
    }
