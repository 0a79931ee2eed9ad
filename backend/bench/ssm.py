"""`python -m backend ssm-bench`: end-to-end Mamba / Mamba-2 speed with our kernels on a GPU.

Models: the mamba-130m and mamba2-130m shapes with random weights (speed does not depend on the values),
bf16, batch 1. For each:
  - prefill: `SSMGraphStepper.prefill` over L tokens (logits of the first new token ready, synchronised),
    median of `--repeats` after one warm-up; peak memory = torch.cuda.max_memory_allocated after a reset
    (weights included);
  - decode: after a prefill of C tokens, `--new-tokens` greedy steps (argmax on the device), with the step
    captured in a CUDA graph, and once eagerly at the first context for comparison;
  - baseline: Hugging Face's own path (no ssm_fast) at the lengths given by --hf-lengths, for the same
    table as ../shared/anchors.md.
Records (kind "ssm_e2e") go to a JSONL file through `store.RecordWriter`; the last stdout line is a JSON
summary.

    python -m backend ssm-bench --out results/ssm_e2e_h100.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from backend.device import synchronize
from backend.runinfo import run_meta
from store import RecordWriter


def build(name: str, smoke: bool, device, dtype):
    from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    if name == "mamba-130m":
        kw = dict(hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4, vocab_size=50280)
        if smoke:
            kw.update(hidden_size=32, num_hidden_layers=2, vocab_size=128)
        return MambaForCausalLM(MambaConfig(**kw)).to(device=device, dtype=dtype).eval(), "mamba"
    if name == "mamba2-130m":
        kw = dict(hidden_size=768, num_hidden_layers=24, state_size=128, head_dim=64, num_heads=24, expand=2,
                  n_groups=1, conv_kernel=4, chunk_size=256, vocab_size=50288)
        if smoke:
            kw.update(hidden_size=32, num_hidden_layers=2, num_heads=4, head_dim=16, state_size=16, vocab_size=128)
        return Mamba2ForCausalLM(Mamba2Config(**kw)).to(device=device, dtype=dtype).eval(), "mamba2"
    raise ValueError(f"unknown model shape {name!r}: use mamba-130m or mamba2-130m")


def timed(fn) -> tuple[float, object]:
    synchronize()
    t0 = time.perf_counter()
    out = fn()
    synchronize()
    return (time.perf_counter() - t0) * 1e3, out


def peak_reset():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_bytes():
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


def decode_rate(stepper, ids, new_tokens: int) -> tuple[float, list[float]]:
    """Prefill `ids`, then `new_tokens` greedy steps; returns (tokens/s, [mean ms per step])."""
    logits = stepper.prefill(ids)
    tok = logits.argmax(-1)
    tok = stepper.step(tok).argmax(-1)  # first step (captures the graph on the first call)
    synchronize()
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        tok = stepper.step(tok).argmax(-1)
    synchronize()
    total = time.perf_counter() - t0
    return new_tokens / total, [total * 1e3 / new_tokens]


def run(args: argparse.Namespace) -> int:
    from backend.generation.ssm_stepper import SSMGraphStepper

    gpu = torch.cuda.is_available()
    if not gpu and not args.smoke:
        print("ssm-bench needs a CUDA or ROCm GPU; run it on a GPU machine (or --smoke on CPU).", file=sys.stderr)
        return 2
    dev = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    device_name = torch.cuda.get_device_name() if gpu else "cpu (smoke)"
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    lengths, contexts, hf_lengths = ints(args.lengths), ints(args.contexts), ints(args.hf_lengths)
    writer = RecordWriter(args.out)
    config = {k: getattr(args, k) for k in ("models", "lengths", "contexts", "new_tokens", "repeats", "hf_lengths",
                                            "smoke")}
    run_id = writer.start_run("ssm_e2e", config, run_meta())
    summary = {"device": device_name}
    for name in args.models.split(","):
        model, family = build(name.strip(), args.smoke, dev, dtype)
        common = dict(model=f"{name}-shape", family=family, device=device_name, dtype=str(dtype).split(".")[-1],
                      batch=1, peak_mem_kind="cuda_allocated" if gpu else None, cache_kind="ssm_state")
        rows = []
        vocab = model.config.vocab_size
        # Hugging Face baseline first (the model is not patched yet)
        for L in hf_lengths:
            ids = torch.randint(0, vocab, (1, L), device=dev)
            try:
                with torch.inference_mode():
                    model(ids[:, :16])  # warm-up of the HF path
                    peak_reset()
                    ms, _ = timed(lambda ids=ids, model=model: model(ids, logits_to_keep=1))
                rows.append({**common, "path": "hf-torch", "prompt_tokens": L, "prefill_ms": ms,
                             "peak_mem_bytes": peak_bytes(), "warmup": 1, "repeats": 1})
            except torch.OutOfMemoryError:
                rows.append({**common, "path": "hf-torch", "prompt_tokens": L, "error": "out of memory"})
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in common}))
            torch.cuda.empty_cache() if gpu else None
        stepper = SSMGraphStepper(model, family)
        path = stepper.path
        for L in lengths:
            ids = torch.randint(0, vocab, (1, L), device=dev)
            try:
                stepper.prefill(ids)  # warm-up (compiles kernels for new shapes)
                peak_reset()
                times = [timed(lambda ids=ids, st=stepper: st.prefill(ids))[0] for _ in range(args.repeats)]
                row = {**common, "path": path.replace("+cudagraph", ""), "prompt_tokens": L,
                       "prefill_ms": statistics.median(times), "peak_mem_bytes": peak_bytes(), "warmup": 1,
                       "repeats": args.repeats, "cache_bytes": stepper.cache_bytes()}
            except torch.OutOfMemoryError:
                row = {**common, "path": path, "prompt_tokens": L, "error": "out of memory"}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in common}))
            if L == 8192 and "prefill_ms" in row:
                summary[f"{name} prefill 8192 ms"] = round(row["prefill_ms"], 2)
        for i, C in enumerate(contexts):
            ids = torch.randint(0, vocab, (1, C), device=dev)
            runs = [(stepper, path)]
            if i == 0 and gpu:
                runs.append((SSMGraphStepper(model, family, use_cuda_graph=False), path.replace("+cudagraph", "")))
            for st, p in runs:
                rate, tpot = decode_rate(st, ids, args.new_tokens)
                row = {**common, "path": p, "prompt_tokens": C, "new_tokens": args.new_tokens, "decode_tok_s": rate,
                       "tpot_ms": tpot[0], "cache_bytes": st.cache_bytes()}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in common}))
                summary[f"{name} decode tok/s @{C} {p}"] = round(rate, 1)
        writer.add_measurements(run_id, rows)
        model = stepper = None  # free the GPU memory before the next model
        if gpu:
            torch.cuda.empty_cache()
    writer.finish_run(run_id, "completed", summary)
    print(json.dumps(summary))
    return 0
