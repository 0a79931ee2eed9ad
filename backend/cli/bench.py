"""`python -m backend bench ...`: the fair speed and memory benchmark (SSM vs transformer).

Sweeps prompt length and new tokens at batch 1, and batch size at the Mamba paper's setting (prompt
2048, 128 new tokens) until a batch runs out of memory; each family on its best standard path through
the same decode loop, plain `generate()` as a labelled baseline. Out-of-memory points are recorded and
the sweep goes on. Writes one run (kind "bench") to the store, or with --jsonl to a JSONL file (GPU
machines have no duckdb; load it with `python -m backend import-results`). The last stdout line is a
JSON record.

Examples:
  python -m backend bench --models 130m,1.4b --jsonl results/bench_h100.jsonl --budget-s 200
  python -m backend bench --models toy --device cpu --prompt-lens 64,128 --batches 1,2 --new-tokens 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from backend.bench.shapes import expand_models
from store import open_store

HELP = "speed and memory benchmark: prefill, TTFT, TPOT, throughput, memory vs context and batch"


def _ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated whole numbers, e.g. 512,2048, not {text!r}.") from None
    if not vals or min(vals) < 1:
        raise ValueError(f"{flag} needs positive whole numbers, got {text!r}.")
    return vals


def _child(args: argparse.Namespace) -> int:
    from backend.bench.isolate import child_main  # torch: only in the child that measures

    return child_main(args.folder)


def register(subparsers) -> argparse.ArgumentParser:
    # the child process of an isolated sweep (backend/bench/isolate.py starts it); not listed in --help
    child = subparsers.add_parser("bench-child")
    child.add_argument("folder", help="the spec/state folder the parent prepared")
    child.set_defaults(func=_child)
    p = subparsers.add_parser("bench", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="130m",
                   help="comma-separated shapes or presets: 130m (mamba-130m, mamba2-130m, pythia-160m), "
                        "1.4b (mamba-1.4b, pythia-1.4b), toy (the bundled trio), all (default: 130m)")
    p.add_argument("--prompt-lens", default="512,1024,2048,4096,8192,16384,32768,65536")
    p.add_argument("--new-tokens", default="128", help="new-token counts for the context sweep")
    p.add_argument("--long-from", type=int, default=16384, help="prompts this long run after the batch sweep")
    p.add_argument("--batches", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,16384",
                   help="batch sizes tried in order at the paper setting until one runs out of memory")
    p.add_argument("--refine-batch", type=int, default=2,
                   help="bisection steps between the largest batch that ran and the one out of memory (default 2)")
    p.add_argument("--batch-prompt-len", type=int, default=2048)
    p.add_argument("--batch-new-tokens", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1,
                   help="run the model list this many times in turn (A B C A B C ...); medians then span the same "
                        "time for every model, for ratios on a machine whose speed drifts (a shared CPU)")
    p.add_argument("--no-hf-baseline", action="store_true", help="skip the plain generate() baseline rows")
    p.add_argument("--no-eager-baseline", action="store_true", help="skip the transformer's eager-loop row")
    p.add_argument("--baseline-prompt-len", type=int, default=512)
    p.add_argument("--baseline-new-tokens", type=int, default=32)
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: SSM_ARENA_DEVICE or auto)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32")
    p.add_argument("--budget-s", type=float, help="stop starting new points after this many seconds")
    p.add_argument("--budget-per-model-s", type=float, help="the same, per model")
    iso = p.add_mutually_exclusive_group()
    iso.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                     help="run each model in its own process (default on CUDA): a crash loses one model only")
    iso.add_argument("--no-isolate", dest="isolate", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="a label for the run")
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.add_argument("--jsonl", metavar="OUT", help="write JSONL records to OUT instead of DuckDB")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="one shard per model on a Ray cluster (one GPU each where GPUs are used): its head's "
                        "host:port, `auto`, or no value for this machine alone (needs `pip install ray`)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=main)
    return p


def config_from_args(args: argparse.Namespace):
    from backend.bench.sweep import SweepConfig

    device = args.device or os.environ.get("SSM_ARENA_DEVICE", "auto")
    isolate = args.isolate
    if getattr(args, "ray", None):  # each model is a Ray shard (its own worker process) already
        isolate = False
    if isolate is None:
        from backend.device import resolve_device

        isolate = resolve_device(device).type == "cuda"
    cfg = SweepConfig(
        isolate=isolate,
        models=expand_models([m.strip() for m in args.models.split(",") if m.strip()]),
        prompt_lens=_ints(args.prompt_lens, "--prompt-lens"),
        new_tokens=_ints(args.new_tokens, "--new-tokens"),
        long_from=args.long_from,
        batches=_ints(args.batches, "--batches"),
        batch_prompt_len=args.batch_prompt_len,
        batch_new_tokens=args.batch_new_tokens,
        refine_batch=args.refine_batch,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        hf_baseline=not args.no_hf_baseline,
        eager_baseline=not args.no_eager_baseline,
        baseline_prompt_len=args.baseline_prompt_len,
        baseline_new_tokens=args.baseline_new_tokens,
        device=device,
        dtype=args.dtype,
        seed=args.seed,
        budget_s=args.budget_s,
        budget_per_model_s=args.budget_per_model_s,
    )
    cfg.validate()
    return cfg


def _open_writer(args):
    if args.jsonl:
        from store import RecordWriter

        return RecordWriter(args.jsonl), None

    st = open_store(args.db)
    return st, st


def _fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # torch loads here, not at import: `python -m backend --help` imports every command module
    from backend.bench.isolate import run_model_in_child
    from backend.bench.sweep import point_counts, run_sweep

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    writer, store = _open_writer(args)
    try:
        if getattr(args, "ray", None):
            from backend.bench.ray_sweep import run_sweep_on_ray

            run_id, rows = run_sweep_on_ray(cfg, writer, address=None if args.ray == "local" else args.ray,
                                            name=args.name, progress=progress)
        else:
            run_id, rows = run_sweep(cfg, writer, name=args.name, progress=progress,
                                     run_model=run_model_in_child if cfg.isolate else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    if not args.quiet:
        print(f"{'model':<16} {'path':<28} {'B':>4} {'L':>6} {'N':>4} {'prefill ms':>10} {'TPOT ms':>8} "
              f"{'tok/s/seq':>9} {'tok/s batch':>11} {'peak GB':>7} status")
        for r in rows:
            if r["metric"] != "point":
                continue
            peak = r.get("peak_mem_bytes")
            print(f"{r['model']:<16} {str(r.get('path')):<28} {r['batch']:>4} {r['prompt_tokens']:>6} "
                  f"{r['new_tokens']:>4} {_fmt(r.get('prefill_ms')):>10} {_fmt(r.get('tpot_ms'), 3):>8} "
                  f"{_fmt(r.get('decode_tok_s')):>9} {_fmt(r.get('decode_tok_s_batch')):>11} "
                  f"{_fmt(peak / 2**30 if peak else None, 2):>7} {r['status']}")
    summary = {"run_id": run_id, **point_counts(rows),
               "max_batch": {r["model"]: r["value"] for r in rows if r["metric"] == "max_batch"},
               "out": args.jsonl or "store"}
    print(json.dumps(summary))
    return 0
