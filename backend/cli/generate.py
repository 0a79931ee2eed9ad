"""`python -m backend generate`: the Arena from a terminal.

Runs the same prompt with the same settings through each model (one after the other, through the same
decode loop as the dashboard), streams each model's text, prints a metrics table and records the run
(kind "generate") in the results store, where the dashboard's History page shows it.

Examples:
  python -m backend generate --prompt "Question: what is 12 plus 30? Answer:"
  python -m backend generate --models toy-mamba,toy-mamba2,toy-transformer --prompt "Once upon a time" \\
      --max-new-tokens 32 --sample --temperature 0.8 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys

from backend.generation.interface import GenerationResult, GenSettings, TokenEvent
from backend.models import registry

HELP = "generate text with several models side by side and print their speed and memory"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="comma-separated model names (default: the bundled SSM / transformer pair; "
                                    "see `python -m backend models`)")
    p.add_argument("--prompt", required=True, help="the prompt every model continues")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-eos", action="store_true", help="do not stop at the end-of-sequence token")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: SSM_ARENA_DEVICE or auto)")
    p.add_argument("--db", help="DuckDB file (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.add_argument("--no-record", action="store_true", help="do not write the run to the results store")
    p.add_argument("--quiet", action="store_true", help="do not stream text while it is generated")
    p.set_defaults(func=main)
    return p


def _fmt(v, digits=1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _table(results) -> str:
    head = (f"{'model':<28} {'family':<11} {'path':<16} {'prompt':>6} {'new':>5} {'TTFT ms':>9} {'prefill ms':>10} "
            f"{'TPOT ms':>8} {'p90 ms':>8} {'tok/s':>8} {'cache KB':>9} {'peak MB':>8} finish")
    lines = [head, "-" * len(head)]
    for r in results:
        m = r.metrics
        lines.append(
            f"{r.model[:28]:<28} {r.family:<11} {m.path[:16]:<16} {m.prompt_tokens:>6} {m.new_tokens:>5} "
            f"{_fmt(m.ttft_ms):>9} {_fmt(m.prefill_ms):>10} {_fmt(m.tpot_ms, 2):>8} {_fmt(m.tpot_p90_ms, 2):>8} "
            f"{_fmt(m.decode_tok_s):>8} {_fmt(m.cache_bytes / 1024 if m.cache_bytes is not None else None):>9} "
            f"{_fmt(m.peak_mem_bytes / 2**20 if m.peak_mem_bytes else None, 0):>8} {r.finish_reason}")
    kinds = {r.metrics.peak_mem_kind for r in results}
    devices = sorted({r.metrics.device for r in results})
    lines.append(f"device: {', '.join(devices)}; peak memory: {', '.join(sorted(kinds))}"
                 + ("; CPU timings (absolute speed comes from GPU runs)" if "cpu_rss" in kinds else ""))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from backend.models.manager import ModelManager

    settings = GenSettings(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                           temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
                           stop_at_eos=not args.no_eos)
    settings.validate()
    names = [n.strip() for n in (args.models or "").split(",") if n.strip()] or list(registry.default_pair())
    for n in names:  # fail on a typo before loading anything
        registry.get_spec(n)
    manager = ModelManager()
    if not manager.fake:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep the terminal for the models' text
    results: list[GenerationResult] = []
    for name in names:
        gen = manager.get(name, device=args.device)
        label = f"=== {name} ({gen.info.family}{', untrained placeholder' if gen.info.placeholder else ''}"
        print(f"{label}, {gen.info.device}, {gen.info.path}) ===", flush=True)
        if not args.quiet:
            print(args.prompt, end="", flush=True)
        for ev in gen.stream(args.prompt, settings):
            if isinstance(ev, TokenEvent):
                if not args.quiet:
                    print(ev.text, end="", flush=True)
            else:
                results.append(ev)
        print("" if not args.quiet else args.prompt + results[-1].text, flush=True)
        print(flush=True)
    print(_table(results))
    run_id = None
    if not args.no_record:
        from backend.generation.recording import record_generation
        from store import open_store

        run_id = record_generation(open_store(args.db), results, settings, source="cli", device=args.device)
        print(f"recorded run {run_id}", file=sys.stderr)
    print(json.dumps({"run_id": run_id, "models": [r.model for r in results],
                      "new_tokens": {r.model: r.metrics.new_tokens for r in results},
                      "finish": {r.model: r.finish_reason for r in results}}))
    return 0
