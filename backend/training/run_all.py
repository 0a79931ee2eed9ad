"""One device call: train the trio, pack each checkpoint, evaluate all three in parallel, gather results.

Writes into --out (at most 7 files, as the GPU machine's transfer allows): <name>.tar.gz per model,
train_<tag>.jsonl, eval_<tag>.jsonl (store.RecordWriter format) and eval_log.txt. Each evaluation runs in its
own process under --eval-timeout seconds; one that runs out keeps the records it wrote.

    python -m backend train-all --out $OUT --tag h100 --time-budget 240 --eval-timeout 130
    python -m backend train-all --out /tmp/o --tag cpu --preset tiny --steps 6 --seq-len 32 --batch-size 4 \
        --n-tokens 20000 --quick-eval                       # CPU smoke test of the whole pipeline
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from backend.device import resolve_device
from backend.training.config import config_from_args
from backend.training.data import _make_stream, long_tokens
from backend.training.loop import train, write_results
from backend.training.pack import pack
from backend.training.plan import load_or_make_stream


def device_tag(device: str) -> str:
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
        cmd = [sys.executable, "-m", "backend", "evaluate", str(f), "--out", str(tmp / f"{f.name}.jsonl"),
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


def train_parallel(cfg, out: Path, tag: str, log_path: Path) -> list[dict]:
    """Train each model of cfg.models in its own process at the same time, on the same token stream, with a
    rendezvous that fixes one step count for all (backend/training/plan.py), or with --steps set, that many
    steps each (e.g. a second seed at the first seed's step count). Returns the summaries."""
    tmp = Path(tempfile.gettempdir())
    stream_file = cfg.stream_file or str(tmp / f"toy_stream_{cfg.mixture}_{cfg.data_seed}_{cfg.n_tokens}.npy")
    t = time.perf_counter()
    stream = load_or_make_stream(stream_file, lambda: _make_stream(cfg))
    print(f"token stream: {len(stream):,} tokens in {stream_file} ({time.perf_counter() - t:.1f}s)", flush=True)
    if cfg.long_seq_len:  # the curriculum's long documents, made once for every process (like the stream)
        n_long = long_tokens(cfg)
        cfg.long_stream_file = cfg.long_stream_file or str(tmp / f"toy_long_{cfg.data_seed}_{n_long}.npy")
        t = time.perf_counter()
        lstream = load_or_make_stream(cfg.long_stream_file, lambda: _make_stream(cfg, n_long, long=True))
        print(f"long stream: {len(lstream):,} tokens in {cfg.long_stream_file} ({time.perf_counter() - t:.1f}s)",
              flush=True)
    plan_dir = Path(tempfile.mkdtemp(prefix="toy_plan_"))
    base = []
    for f in fields(cfg):
        if f.name in ("models", "plan_models", "results", "stream_file", "plan_dir", "out_dir"):
            continue
        v = getattr(cfg, f.name)
        base += [f"--{f.name.replace('_', '-')}" if f.name != "time_budget_s" else "--time-budget", str(v)]
    procs = []
    with open(log_path, "a") as logf:
        for name in cfg.models:
            plan = [] if cfg.steps else ["--plan-models", ",".join(cfg.models), "--plan-dir", str(plan_dir)]
            cmd = [sys.executable, "-u", "-m", "backend", "train", "--models", name, *plan, "--stream-file",
                   stream_file, "--out", cfg.out_dir, *base]
            part = open(Path(tempfile.gettempdir()) / f"train_{name}.log", "w")
            procs.append((name, subprocess.Popen(cmd, stdout=part, stderr=subprocess.STDOUT), part))
        for name, p, part in procs:
            p.wait()
            part.close()
            text = (Path(tempfile.gettempdir()) / f"train_{name}.log").read_text()
            logf.write(f"==== train {name} (exit {p.returncode})\n{text}")
            print(f"train {name}: exit {p.returncode}; last line: {text.strip().splitlines()[-1][:300] if text.strip() else ''}",
                  flush=True)
    failed = [n for n, p, _ in procs if p.returncode != 0]
    if failed:
        raise RuntimeError(f"training failed for {', '.join(failed)}: see {log_path}")
    summaries = []
    for name in cfg.models:
        s = json.loads((Path(cfg.out_dir) / name / "train_summary.json").read_text())
        s.pop("config", None)
        summaries.append(s)
    if cfg.results:
        write_results(cfg, summaries)
    return summaries


def run(a: argparse.Namespace) -> int:
    if not a.out_dir:
        raise ValueError("--out is required: the folder for the archives and JSONL results (e.g. $OUT on a GPU machine)")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_from_args(a)
    cfg.out_dir = a.models_dir
    if a.tag == "auto":
        a.tag = device_tag(cfg.device)
    cfg.results = str(out / f"train_{a.tag}.jsonl")
    if a.parallel:
        train_parallel(cfg, out, a.tag, out / "train_log.txt")
    else:
        train(cfg, log=lambda s: print(s, flush=True))

    folders = [Path(a.models_dir) / m for m in cfg.models]
    if getattr(a, "no_pack", False):
        print(f"checkpoints left unpacked in {a.models_dir} (--no-pack)", flush=True)
        return 0
    for f in folders:
        print(f"packed {pack(str(f), out)}", flush=True)
    if not a.no_eval and getattr(a, "ray", None):  # one Ray shard per checkpoint (backend/scale/evals.py)
        from backend.scale.evals import run_evals_on_ray

        run_evals_on_ray(folders, out, a.tag, a.eval_timeout, a.quick_eval, cfg.device,
                         address=None if a.ray == "local" else a.ray)
    elif not a.no_eval:
        run_evals(folders, out, a.tag, a.eval_timeout, a.quick_eval, cfg.device)
    return 0
