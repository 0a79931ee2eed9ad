"""`python -m backend train-all`: one GPU call: train the trio (in parallel), pack each checkpoint, evaluate all three (argument parsing only; the work is `backend.training.run_all.run`)."""

from __future__ import annotations

import argparse

from backend.cli import run_in

HELP = "one GPU call: train the trio (in parallel), pack each checkpoint, evaluate all three"


def register(subparsers) -> argparse.ArgumentParser:
    from backend.training.config import add_arguments  # the training flags are TrainConfig's

    p = subparsers.add_parser("train-all", help=HELP, description=HELP)
    add_arguments(p)
    p.add_argument("--tag", default="auto", help="file name tag; auto: h100 / h200 / cpu from the device")
    p.add_argument("--models-dir", default="/tmp/toy_models", help="where checkpoints are written first")
    p.add_argument("--eval-timeout", type=float, default=130.0)
    p.add_argument("--quick-eval", action="store_true")
    p.add_argument("--no-eval", action="store_true", help="train and pack only")
    p.add_argument("--no-pack", action="store_true",
                   help="leave the checkpoints in --models-dir, unpacked (the size ladder: its archives are too "
                        "large to return, and packing a ~29M model's weights as .xz took minutes); implies --no-eval")
    p.add_argument("--parallel", action="store_true",
                    help="one process per model, all at once, step count agreed at a rendezvous (GPU)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="evaluate each checkpoint as a Ray shard (backend/scale/evals.py); no ADDRESS: a local "
                        "cluster started for this run; ADDRESS: join a running one (ray start --head)")
    p.set_defaults(out_dir=None)
    p.set_defaults(func=run_in("backend.training.run_all"))
    return p
