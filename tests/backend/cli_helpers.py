"""The `python -m backend experiment` command in-process, for tests that need its parser or its output."""

from __future__ import annotations

import argparse

from backend.cli import experiment as cmd


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend")
    cmd.register(p.add_subparsers(dest="command"))
    return p


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err
