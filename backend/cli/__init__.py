"""`python -m backend <command>`: the one entry point; commands are discovered from backend/cli/*.py.

Each command module parses arguments and calls library functions (the work lives in the rooms of backend/).
Command modules import their library inside `main` where it loads torch or a model, so `--help` stays fast.

A command module defines `register(subparsers)`, which adds its parser and sets `func` (args -> exit code)
with `set_defaults(func=...)`. A module that fails to import or register is skipped with a warning, so one
broken command never takes the others down. User errors (unknown model, model not available, bad prompt,
store locked, bad argument values) print one line on stderr and exit with code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

from backend.errors import GenerationError, ModelError

os.environ.setdefault("USE_HUB_KERNELS", "0")

COMMANDS_DIR = Path(__file__).resolve().parent


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ModelError, GenerationError, FileNotFoundError]
    try:
        from store import StoreError

        types.append(StoreError)
    except ImportError:  # store not installed: nothing to catch
        pass
    from retrieval.errors import RetrievalError  # a light module: no torch / faiss

    types.append(RetrievalError)
    return tuple(types)


def run_in(module: str, func: str = "run") -> Callable[[argparse.Namespace], int]:
    """A command's `func`: import `module` when the command runs (torch and the models load then, not when
    `--help` builds the parser) and call its `run(args)`; None counts as exit code 0."""

    def call(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), func)(args) or 0)

    return call


def build_parser(warn=None, commands_dir: Path = COMMANDS_DIR, package: str = "backend.cli"
                 ) -> argparse.ArgumentParser:
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="SSM Arena command line: generate, benchmark, run experiments, manage results.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for info in sorted(pkgutil.iter_modules([str(commands_dir)]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod_name = f"{package}.{info.name}"
        try:
            mod = importlib.import_module(mod_name)
            register = getattr(mod, "register", None)
            if not callable(register):
                continue  # a helper module, not a command
            register(sub)
        except Exception as e:  # noqa: BLE001 - any failure in one command must not break the CLI
            warn(f"command module {mod_name} could not be loaded and is skipped ({type(e).__name__}: {e}).")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2 if args.command is None else 1
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m backend models | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except _user_error_types() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # argument values rejected by GenSettings / configs: sentences too
        print(f"error: {e}", file=sys.stderr)
        return 2
