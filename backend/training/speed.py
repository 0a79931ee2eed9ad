"""Training-step speed of the trio per training path and batch size (plans a training run; a benchmark).

For each model and batch size: build the model, choose its training path (`backend/training/paths.py`: our
SSM training ops after an end-to-end check against transformers' own, or transformers' path), run
`--warmup` steps, then time `--steps` steps (device synchronised before each clock read) and report the
median ms per step and tokens/s. Optionally times transformers' own path too (`--also-hf`), which is what
the fast path replaces. One JSON line per point on stdout (and in --jsonl as store records); the last
stdout line is a JSON summary.

    python -m backend train-speed --batch-sizes 16,32 --steps 15 --also-hf --jsonl results/train_speed.jsonl
    python -m backend train-speed --preset tiny --seq-len 64 --batch-sizes 2 --steps 2 --device cpu   # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from backend.device import resolve_device, synchronize
from backend.training.loop import TrainConfig, _optimizer, train_step
from backend.training.paths import choose_path
from backend.training.trio import FAMILY, build_model, n_params


def time_steps(model, opt, x, y, device, warmup: int, steps: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        synchronize(device)
        t = time.perf_counter()
        train_step(model, opt, x, y, device, TrainConfig().grad_clip)
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def measure(name: str, batch: int, a, device, mode: str) -> dict:
    m = build_model(name, a.preset, seed=0, context=a.seq_len).to(device)
    m.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, 4096, (batch, a.seq_len), generator=g).to(device)
    y = torch.roll(x, -1, dims=1)
    t0 = time.perf_counter()
    path, check = choose_path(m, FAMILY[name], x, y, mode, log=lambda s: None)
    check_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    opt = _optimizer(m, TrainConfig(), device)
    try:
        times = time_steps(m, opt, x, y, device, a.warmup, a.steps)
        err = None
    except torch.OutOfMemoryError as e:  # recorded, the sweep goes on
        times, err = [], f"out of memory: {str(e).splitlines()[0]}"
    ms = 1000 * statistics.median(times) if times else None
    rec = {"model": name, "family": FAMILY[name], "n_params": n_params(m), "batch_size": batch,
           "seq_len": a.seq_len, "train_path": path, "fast_mode": mode, "path_check": check,
           "check_s": round(check_s, 2), "ms_per_step": ms, "ms_per_step_min": 1000 * min(times) if times else None,
           "tokens_per_s": batch * a.seq_len / (ms / 1000) if ms else None, "steps": len(times),
           "warmup": a.warmup, "error": err, "preset": a.preset,
           "peak_mem_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
           "metric": "ms_per_step", "value": ms}
    del m, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rec


def run(a: argparse.Namespace) -> int:
    device = resolve_device(a.device)
    rows = []
    for name in [m for m in a.models.split(",") if m]:
        modes = ["auto", "off"] if a.also_hf and FAMILY[name] != "transformer" else ["auto"]
        for batch in [int(b) for b in a.batch_sizes.split(",") if b]:
            for mode in modes:
                rec = measure(name, batch, a, device, mode)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    if a.jsonl:
        from backend.runinfo import write_jsonl_run

        write_jsonl_run(a.jsonl, "train-speed", vars(a), rows,
                        {f"{r['model']}/{r['batch_size']}/{r['train_path']}": r["ms_per_step"] for r in rows},
                        name="training step speed")
    print(json.dumps({"points": len(rows), "ms_per_step": {f"{r['model']}/b{r['batch_size']}/{r['train_path']}":
                                                             r["ms_per_step"] for r in rows}}))
    return 0
