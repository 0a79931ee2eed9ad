"""One device call: train the trio, pack each checkpoint, evaluate all three in parallel, gather results.

Writes into --out (at most 7 files, as the GPU machine's transfer allows): <name>.tar.gz per model,
train_<tag>.jsonl, eval_<tag>.jsonl (store.RecordWriter format) and eval_log.txt. Each evaluation runs in its
own process under --eval-timeout seconds; one that runs out keeps the records it wrote.

    python -m backend.train_all --out $OUT --tag h100 --time-budget 240 --eval-timeout 130
    python -m backend.train_all --out /tmp/o --tag cpu --preset tiny --steps 6 --seq-len 32 --batch-size 4 \
        --n-tokens 20000 --quick-eval                       # CPU smoke test of the whole pipeline
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import sys
import time
from pathlib import Path

from backend.train import add_arguments, config_from_args, train


def device_tag(device: str) -> str:
    import torch

    from backend.train import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(dev)
    for chip in ("H100", "H200", "A100", "MI300"):
        if chip in name:
            return chip.lower()
    return "gpu"


def run_evals(folders: list[Path], out: Path, tag: str, timeout_s: float, quick: bool, device: str) -> None:
    tmp = Path(tempfile.gettempdir()) / f"toy_eval_{tag}"
    tmp.mkdir(parents=True, exist_ok=True)
    procs = []
    for f in folders:
        cmd = [sys.executable, "-m", "backend.toyworld.eval_suite", str(f), "--out", str(tmp / f"{f.name}.jsonl"),
               "--device", device] + (["--quick"] if quick else [])
        log = open(tmp / f"{f.name}.log", "w")
        procs.append((f.name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + timeout_s
    for name, p, log in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            print(f"eval of {name} stopped after {timeout_s:.0f}s; keeping its records so far", flush=True)
        log.close()
        print(f"eval {name}: exit {p.returncode}", flush=True)
    with open(out / f"eval_{tag}.jsonl", "w") as fh, open(out / "eval_log.txt", "w") as lh:
        for name, _, _ in procs:
            part = tmp / f"{name}.jsonl"
            if part.exists():
                fh.write(part.read_text())
            lh.write(f"==== {name}\n" + (tmp / f"{name}.log").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend.train_all", description=__doc__.split("\n")[0])
    add_arguments(ap)
    ap.add_argument("--tag", default="auto", help="file name tag; auto: h100 / h200 / cpu from the device")
    ap.add_argument("--models-dir", default="/tmp/toy_models", help="where checkpoints are written first")
    ap.add_argument("--eval-timeout", type=float, default=130.0)
    ap.add_argument("--quick-eval", action="store_true")
    ap.set_defaults(out_dir=None)
    a = ap.parse_args(argv)
    if not a.out_dir:
        ap.error("--out is required: the folder for the archives and JSONL results (e.g. $OUT on a GPU machine)")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_from_args(a)
    cfg.out_dir = a.models_dir
    if a.tag == "auto":
        a.tag = device_tag(cfg.device)
    cfg.results = str(out / f"train_{a.tag}.jsonl")
    train(cfg, log=lambda s: print(s, flush=True))
    from backend.toyworld.pack import pack

    folders = [Path(a.models_dir) / m for m in cfg.models]
    for f in folders:
        print(f"packed {pack(str(f), out)}", flush=True)
    run_evals(folders, out, a.tag, a.eval_timeout, a.quick_eval, cfg.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
