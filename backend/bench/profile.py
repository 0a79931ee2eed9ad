"""Where one prefill's time goes: torch.profiler's GPU kernel times for a [batch, prompt_len] prefill on the
benchmark's own stepper (the path `bench` times), grouped into categories by kernel name (issue 15: "report
where the time goes: prefill per token, scan share, decode").

One record per (model, category): `metric` "prefill_kernel_ms" with the category's summed kernel time, its
share of all kernel time, the number of kernel launches, and the wall time of the same prefill measured
without the profiler (median of `repeats`). Kernel time below wall time is launch overhead and host work.

    python -m backend bench-profile --models 130m --batch 64 --prompt-len 2048 --jsonl results/profile_h100.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time

import torch

from backend.bench import steppers
from backend.bench.measure import _prompt, _vocab, free_memory
from backend.bench.shapes import expand_models, get_shape
from backend.device import synchronize
from backend.runinfo import run_meta
from store import RecordWriter

# (category, substrings of a kernel name), first match wins; names are lower-cased first. Our Triton kernels
# keep their Python names (_selective_scan_kernel, _ssd_chunk_scan_kernel, ...); cuBLAS / CUTLASS GEMMs are
# gemm / nvjet / cutlass / xmma; SDPA's are flash / fmha / efficient_attention.
CATEGORIES = (
    ("scan", ("selective_scan", "chunk_state", "ssd_", "state_update", "channels_last")),
    ("conv", ("conv",)),
    ("attention", ("flash", "fmha", "attention", "attn")),
    ("matmul", ("gemm", "gemv", "nvjet", "cutlass", "xmma", "cublas", "matmul", "_mm_", "splitk")),
    ("norm", ("norm",)),
)


def categorize(kernel_name: str) -> str:
    """The category of one GPU kernel by its name ('other': elementwise, copies, reductions, softmax...)."""
    name = kernel_name.lower()
    for category, keys in CATEGORIES:
        if any(k in name for k in keys):
            return category
    return "other"


def group(kernels: list[tuple[str, float, int]]) -> dict[str, dict]:
    """[(kernel name, total microseconds, launches)] -> {category: {"ms", "share", "launches", "top"}},
    `top` being the category's three longest kernels by name."""
    total_us = sum(us for _, us, _ in kernels) or 1.0
    out: dict[str, dict] = {}
    by_cat: dict[str, list] = collections.defaultdict(list)
    for name, us, n in kernels:
        by_cat[categorize(name)].append((name, us, n))
    for cat, items in by_cat.items():
        us = sum(i[1] for i in items)
        top = sorted(items, key=lambda i: -i[1])[:3]
        out[cat] = {"ms": us / 1e3, "share": us / total_us, "launches": sum(i[2] for i in items),
                    "top": [[n[:80], round(t / 1e3, 3)] for n, t, _ in top]}
    return out


def profiled_kernels(fn) -> list[tuple[str, float, int]]:
    """Run fn once under torch.profiler; [(kernel name, total device microseconds, launches)] of the GPU kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        synchronize()
    out = []
    for e in prof.key_averages():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):  # kernel events, not the CPU ops that launch them
            us = float(getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0) or 0)
            if us > 0:
                out.append((e.key, us, int(e.count)))
    return out


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        print("bench-profile needs a CUDA or ROCm GPU (kernel times come from the GPU profiler); run it on a GPU "
              "machine.", file=sys.stderr)
        return 2
    dtype = torch.bfloat16
    writer = RecordWriter(args.jsonl)
    meta = run_meta()
    run_id = writer.start_run("bench_profile", {"models": args.models, "batch": args.batch,
                                                "prompt_len": args.prompt_len}, meta)
    summary: dict = {"device": torch.cuda.get_device_name(device)}
    for name in expand_models(args.models.split(",")):
        shape = get_shape(name)
        model, path = steppers.load_model(shape, device, dtype)
        stepper = steppers.make_stepper("best", model, shape.family, device, 2)
        ids = _prompt(args.batch, args.prompt_len, _vocab(model), device, 0)
        with torch.inference_mode():
            for _ in range(2):  # warm-up: compiles, autotunes, fills the allocator's pools
                stepper.prefill(ids)
            synchronize()
            walls = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                stepper.prefill(ids)
                synchronize()
                walls.append((time.perf_counter() - t0) * 1e3)
            kernels = profiled_kernels(lambda s=stepper, i=ids: s.prefill(i))
        wall = statistics.median(walls)
        groups = group(kernels)
        kernel_ms = sum(g["ms"] for g in groups.values())
        rows = []
        base = {"device": summary["device"], "family": shape.family, "path": path, "model": name, "batch": args.batch,
                "prompt_tokens": args.prompt_len, "dtype": "bfloat16", "prefill_ms": wall,
                "prefill_us_per_token": wall * 1e3 / (args.batch * args.prompt_len), "kernel_ms_total": kernel_ms}
        for cat, g in sorted(groups.items(), key=lambda kv: -kv[1]["ms"]):
            rows.append({**base, "metric": "prefill_kernel_ms", "category": cat, "value": g["ms"],
                         "share": g["share"], "launches": g["launches"], "top_kernels": json.dumps(g["top"])})
        writer.add_measurements(run_id, rows)
        print(f"{name} ({path}) B{args.batch} L{args.prompt_len}: prefill {wall:.1f} ms "
              f"({base['prefill_us_per_token']:.3f} us/token), kernels {kernel_ms:.1f} ms")
        for r in rows:
            print(f"  {r['category']:<10} {r['value']:9.2f} ms {100 * r['share']:5.1f}%  {r['launches']:6d} launches  "
                  f"{r['top_kernels'][:150]}")
        summary[name] = {"prefill_ms": round(wall, 2), **{r["category"]: round(r["share"], 3) for r in rows}}
        del model, stepper
        free_memory(device)
    writer.finish_run(run_id, "completed", summary)
    print(json.dumps(summary))
    return 0
