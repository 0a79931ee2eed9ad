"""`python -m backend generate`: the Arena from a terminal.

Runs the same prompt with the same settings through each model (one after the other, through the same
decode loop as the dashboard), streams each model's text, prints a metrics table and records the run
(kind "generate") in the results store, where the dashboard's History page shows it.

Examples:
  python -m backend generate --prompt "Question: what is 12 plus 30? Answer:"
  python -m backend generate --models toy-mamba,toy-mamba2,toy-transformer --prompt "Once upon a time" \\
      --max-new-tokens 32 --sample --temperature 0.8 --seed 1
  python -m backend generate --prompt-file long_prompt.txt      # longer than the shell's argument limit
  cat prompt.txt | python -m backend generate --prompt-file -   # from standard input

Every model is loaded and every model's position limit is checked against the prompt before the first one
runs, so a prompt too long for one model stops the command at once, not after the others ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backend.generation.interface import GenerationResult, GenSettings, PromptTooLongError, TokenEvent
from backend.models import registry

HELP = "generate text with several models side by side and print their speed and memory"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="comma-separated model names (default: the bundled SSM / transformer pair; "
                                    "see `python -m backend models`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt every model continues")
    src.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a UTF-8 text file ('-': standard input)")
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


def text_arg(value: str | None, what: str, hint: str = "re-type it in UTF-8") -> str | None:
    """Command-line text must be UTF-8 (argv bytes that are not arrive as lone surrogates)."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"The {what} contains bytes that are not UTF-8 text; {hint}.") from None
    return value


def model_names(value: str | None) -> list[str]:
    """--models: comma-separated registry names (default: the bundled pair); each must exist, once."""
    if value is None:
        return list(registry.default_pair())
    text_arg(value, "--models list")
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--models {value!r} names no model. Give comma-separated names "
                         "(see `python -m backend models`), or leave --models out for the default pair.")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--models lists {', '.join(twice)} more than once; name each model once.")
    for n in names:  # fail on a typo before loading anything
        registry.get_spec(n)
    return names


def int_list(value: str, what: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise ValueError(f"{what} must be comma-separated whole numbers of at least 1 (e.g. 1,3,5), not {value!r}.")
    return out


def read_prompt(args: argparse.Namespace) -> str:
    """--prompt, or the text of --prompt-file (UTF-8; '-' reads standard input)."""
    if args.prompt_file is None:
        return text_arg(args.prompt, "prompt", "re-type it, or save it as UTF-8 text and pass --prompt-file")
    source = "standard input" if args.prompt_file == "-" else args.prompt_file
    try:
        data = sys.stdin.buffer.read() if args.prompt_file == "-" else Path(args.prompt_file).read_bytes()
    except IsADirectoryError:
        raise ValueError(f"--prompt-file {source} is a folder; give a text file.") from None
    except OSError as e:
        raise ValueError(f"--prompt-file {source} cannot be read ({e.strerror}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"The prompt in {source} is not UTF-8 text (byte {e.start}); save it as UTF-8.") from None


def check_positions(gens: list, prompt: str, settings: GenSettings) -> None:
    """Every model's position limit against prompt + new tokens, before any model runs."""
    over = []
    for gen in gens:
        limit = gen.info.max_context
        n = gen.count_tokens(prompt)
        if limit and n + settings.max_new_tokens > limit:
            over.append(f"'{gen.info.name}' is {n} tokens + {settings.max_new_tokens} new (limit {limit})")
    if over:
        raise PromptTooLongError(
            f"The prompt is too long for {len(over)} of the models, so none was run: {'; '.join(over)}. Shorten "
            "the prompt, lower --max-new-tokens or leave those models out.")


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
    prompt = read_prompt(args)
    names = model_names(args.models)
    manager = ModelManager()
    if not manager.fake:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep the terminal for the models' text
    gens = [manager.get(name, device=args.device) for name in names]
    if not prompt.strip():
        raise ValueError("The prompt is empty. Type some text for the models to continue.")
    check_positions(gens, prompt, settings)
    results: list[GenerationResult] = []
    for name, gen in zip(names, gens, strict=True):
        label = f"=== {name} ({gen.info.family}{', untrained placeholder' if gen.info.placeholder else ''}"
        print(f"{label}, {gen.info.device}, {gen.info.path}) ===", flush=True)
        if not args.quiet:
            print(prompt, end="", flush=True)
        for ev in gen.stream(prompt, settings):
            if isinstance(ev, TokenEvent):
                if not args.quiet:
                    print(ev.text, end="", flush=True)
            else:
                results.append(ev)
        print("" if not args.quiet else prompt + results[-1].text, flush=True)
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
