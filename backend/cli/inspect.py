"""`python -m backend inspect`: the inside view from a terminal.

Runs each model once on the text (a prompt, or a pass-key / RAG experiment instance with the planted key /
gold passage highlighted), reads what it keeps of every token (SSMs: Δ, state norms, retained shares through
hooks on their mixers; transformers: attention maps), writes one compressed `<model>.npz` per model to
--out and prints one summary line per model. The dashboard's Inside view page runs the same code
(backend.inside); `backend.inside.data.load(path)` reads a file back.

Examples:
  python -m backend inspect --model toy-mamba,toy-transformer --prompt "The pass key is 4721. Remember it."
  python -m backend inspect --model toy-mamba,toy-mamba2,toy-transformer --passkey 512 --depth 0.5 --new-tokens 6
  python -m backend inspect --model toy-mamba2 --rag 3 --query 2
  python -m backend inspect --model toy-mamba,toy-transformer --run 3f2a... --instance length=512/depth=0.5/keys=1/q=0
"""

from __future__ import annotations

import argparse

from backend.cli import run_in
from backend.inside.data import DEFAULT_MAX_TOKENS, ENV_MAX_TOKENS

HELP = "what each model keeps from the prompt (SSM state, attention), written as .npz"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("inspect", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model name, or several separated by commas")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the text to inspect")
    src.add_argument("--passkey", type=int, metavar="LENGTH", help="a pass-key instance of about LENGTH tokens")
    src.add_argument("--rag", type=int, metavar="K", help="a RAG experiment instance with K passages")
    src.add_argument("--run", metavar="RUN_ID", help="an instance of a stored experiment run (with --instance)")
    p.add_argument("--instance", metavar="ID", help="the instance id within --run (as the experiment pages show it)")
    p.add_argument("--db", help="DuckDB file for --run (default: SSM_ARENA_DB or data/arena.duckdb)")
    p.add_argument("--depth", type=float, default=0.5, help="pass-key depth (0 = start, 1 = end; default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="experiment seed of the instance (default 0)")
    p.add_argument("--query", type=int, default=0, help="which instance of the point (default 0)")
    p.add_argument("--new-tokens", type=int, default=0, help="generate this many tokens greedily and inspect them too")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"refuse longer texts (default {ENV_MAX_TOKENS} or {DEFAULT_MAX_TOKENS})")
    p.add_argument("--at", type=int, default=0, metavar="K",
                   help="read the highlighted spans at the prompt's last token + K (0: the end of the prompt; 1: the "
                        "first output token, which predicts the second; the SSMs keep K <= 4)")
    p.add_argument("--out", default="data/inspect", help="folder for the .npz files (default data/inspect)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: SSM_ARENA_DEVICE or auto)")
    p.set_defaults(func=run_in("backend.inside.batch"))
    return p
