"""`python -m backend kernel-bench`: time each SSM kernel on a GPU against the measured HBM copy bandwidth,
(argument parsing only; the work is `backend.bench.kernels.run`)."""

from __future__ import annotations

import argparse

HELP = "benchmark the SSM Triton kernels (GPU): time, GB/s vs HBM copy bandwidth, speed-ups"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("kernel-bench", help=HELP, description=HELP)
    p.add_argument("--out", help="JSONL file for the records (store.RecordWriter format); required unless --ssd-train")
    p.add_argument("--mamba-ssm", metavar="DIR", help="extracted mamba-ssm sdist to compare against (optional)")
    p.add_argument("--mamba-ssm-cuda", metavar="SDIST",
                   help="mamba-ssm's source distribution (.tar.gz): its CUDA scan forward is built here for this GPU "
                        "and timed on the same inputs as a peer (rows path 'mamba-ssm-cuda'; needs nvcc)")
    p.add_argument("--sweep", action="store_true", help="also time alternative launch configs (out-of-place kernels)")
    p.add_argument("--no-slow", action="store_true", help="skip the slow reference / HF baselines")
    p.add_argument("--ops", metavar="OP,...", help="only these kernels (e.g. selective_scan); default: all")
    p.add_argument("--previous-scan", metavar="FILE",
                   help="an earlier kernels/selective_scan.py (e.g. `git show REV:kernels/selective_scan.py > F`): "
                        "timed on the same inputs as baseline 'previous', its output checked against ours")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, runs on CPU under TRITON_INTERPRET=1 (checks the script, times nothing useful)")
    t = p.add_argument_group("--ssd-train: forward + backward of one Mamba-2 mixer in training mode, "
                                 "Hugging Face's path vs ours (last stdout line: JSON)")
    t.add_argument("--ssd-train", action="store_true", help="run this benchmark instead of the kernel table")
    t.add_argument("--device", default=None)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seqlen", type=int, default=1024)
    t.add_argument("--heads", type=int, default=8)
    t.add_argument("--headdim", type=int, default=64)
    t.add_argument("--dstate", type=int, default=64)
    t.add_argument("--chunk", type=int, default=64, help="ssd_chunked chunk length")
    t.add_argument("--hf-chunk", type=int, default=32, help="chunk_size of the Hugging Face config")
    t.add_argument("--bf16", action="store_true", help="run the mixers under bf16 autocast")
    t.add_argument("--flush-denormal", action="store_true",
                   help="CPU: flush denormals to zero (exp of very negative numbers makes CPU timings erratic)")
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--iters", type=int, default=5)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.ssd_train:
        from backend.bench import train_ops  # torch loads here, not when `python -m backend --help` runs

        train_ops.run(args)
        return 0
    if not args.out:
        raise ValueError("kernel-bench needs --out FILE (a JSONL file for the records), or --ssd-train.")
    from backend.bench.kernels import run  # torch loads here, not when `python -m backend --help` runs

    return run(args)
