"""`python -m backend train ...`: train the bundled toy trio (`backend.training.loop.train`).

    python -m backend train --time-budget 300 --out assets/models
    python -m backend train --preset tiny --steps 30 --seq-len 64 --batch-size 8 --out /tmp/toy
"""

from __future__ import annotations

import argparse

HELP = "train the parameter-matched Mamba / Mamba-2 / Transformer toy trio on the toy-world corpus"


def register(subparsers) -> argparse.ArgumentParser:
    from backend.training.config import add_arguments

    p = subparsers.add_parser("train", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from backend.training.loop import config_from_args, train

    train(config_from_args(args), log=lambda s: print(s, flush=True))
    return 0
