"""`python -m backend.bench ...`: the same command as `python -m backend bench ...` (see
backend/commands/bench.py), usable on machines where only this package is wanted."""

import argparse
import logging
import sys

from backend.commands import bench


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m backend.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    bench.register(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
