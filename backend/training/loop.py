"""Train the bundled toy trio (Mamba, Mamba-2, Transformer) on the toy-world corpus, in lockstep.

The three models see the same batches in the same order (one token stream, one shuffled order), with the
same optimiser and learning-rate schedule, stepping in lockstep in one process: at every step each model
takes the same batch. The schedule is warmup -> constant -> linear decay (WSD). With `steps` set, the decay
starts at `int(steps * (1 - decay_frac))`; with `steps=0` the run is timed instead: decay begins once
`time_budget_s * (1 - decay_frac)` has passed, at which point the total is fixed to the smallest N whose
decay start is that step, so `--steps N` reproduces the same schedule exactly (the summary records N).

bf16 autocast on CUDA, fp32 on CPU. Mamba-1 trains through the pure-PyTorch `mambapy` parallel scan
(`use_mambapy=True`); Mamba-2 through transformers' chunked PyTorch path; Llama through SDPA.

    python -m backend train --time-budget 300 --out assets/models          # the bundled checkpoints
    python -m backend train --preset tiny --steps 30 --seq-len 64 --batch-size 8 --out /tmp/toy  # CPU smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

os.environ.setdefault("USE_HUB_KERNELS", "0")  # never try to download kernels (before transformers loads)

import torch
import torch.nn.functional as F

from backend.device import resolve_device, synchronize
from backend.runinfo import write_jsonl_run
from backend.toyworld import training_corpus
from backend.toyworld.tokenizer import TOKENIZER_DIR, load_tokenizer
from backend.training.paths import choose_path
from backend.training.plan import plan_total
from backend.training.trio import FAMILY, MODEL_NAMES, build_model, n_params


@dataclass
class TrainConfig:
    models: list[str] = field(default_factory=lambda: list(MODEL_NAMES))
    preset: str = "small"
    out_dir: str = "assets/models"
    seq_len: int = 1024
    batch_size: int = 8
    steps: int = 0  # fixed number of steps; 0 = timed run (time_budget_s)
    time_budget_s: float = 300.0
    n_tokens: int = 12_000_000  # length of the generated token stream (reused from the start if exhausted)
    lr: float = 2e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 60
    decay_frac: float = 0.2
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    data_seed: int = 0
    workers: int = 0  # data generation processes; 0 = one per CPU core
    log_every: int = 10
    device: str = "auto"
    save_dtype: str = "bfloat16"
    results: str = ""  # JSONL file for the summary records (store.RecordWriter format)
    fast_ssm: str = "auto"  # auto | on | off: our SSM training ops (backend/training/ssm_ops.py), checked first
    stream_file: str = ""  # .npy of the token stream: made once if absent, shared by every process
    plan_dir: str = ""  # rendezvous folder: processes agree on the step count (backend/training/plan.py)
    plan_models: list[str] = field(default_factory=list)  # every model taking part in the rendezvous
    plan_after: int = 40  # steps trained before the rendezvous (inside warmup)


# ---------------------------------------------------------------- data

def _shard(args: tuple[int, int, int]) -> np.ndarray:
    data_seed, index, n_tokens = args

    tok = load_tokenizer()
    docs = list(training_corpus(n_tokens, seed=f"{data_seed}.{index}"))
    out = []
    for i in range(0, len(docs), 1000):
        for ids in tok(docs[i:i + 1000], add_special_tokens=True)["input_ids"]:
            out.append(np.asarray(ids, dtype=np.uint16))
    return np.concatenate(out)


def token_stream(cfg: TrainConfig) -> np.ndarray:
    """The one token stream every model trains on: documents (each starting with <|endoftext|>) back to
    back, generated in shards that are concatenated in shard order (deterministic for data_seed)."""
    if cfg.stream_file:
        from backend.training.plan import load_or_make_stream

        return load_or_make_stream(cfg.stream_file, lambda: _make_stream(cfg))
    return _make_stream(cfg)


def _make_stream(cfg: TrainConfig) -> np.ndarray:
    workers = cfg.workers or os.cpu_count() or 1
    n_shards = max(1, min(64, cfg.n_tokens // 200_000))
    jobs = [(cfg.data_seed, i, cfg.n_tokens // n_shards) for i in range(n_shards)]
    if workers == 1 or n_shards == 1:
        parts = [_shard(j) for j in jobs]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, n_shards)) as pool:
            parts = pool.map(_shard, jobs)
    return np.concatenate(parts)


class Batches:
    """Non-overlapping windows of seq_len + 1 tokens in a fixed shuffled order; batch(step) -> (x, y)."""
    def __init__(self, stream: np.ndarray, cfg: TrainConfig):
        self.n_seq = len(stream) // (cfg.seq_len + 1)
        if self.n_seq < cfg.batch_size:
            raise ValueError(f"The token stream ({len(stream)} tokens) is shorter than one batch; raise n_tokens.")
        self.windows = stream[: self.n_seq * (cfg.seq_len + 1)].reshape(self.n_seq, cfg.seq_len + 1)
        self.order = np.random.default_rng(cfg.seed).permutation(self.n_seq)
        self.bs = cfg.batch_size

    def batch(self, step: int):
        idx = [self.order[(step * self.bs + i) % self.n_seq] for i in range(self.bs)]
        w = torch.from_numpy(self.windows[idx].astype(np.int64))
        return w[:, :-1], w[:, 1:]

    def epochs(self, steps: int) -> float:
        return steps * self.bs / self.n_seq


# ---------------------------------------------------------------- schedule

def decay_start(total: int, cfg: TrainConfig) -> int:
    return int(total * (1 - cfg.decay_frac))


def total_for_decay_at(step: int, cfg: TrainConfig) -> int:
    """Smallest total whose decay starts at or after `step`."""
    n = max(step, 1)
    while decay_start(n, cfg) < step:
        n += 1
    return n


def lr_at(step: int, total: int | None, cfg: TrainConfig) -> float:
    """WSD: linear warmup, constant, then linear decay to min_lr_frac * lr over the last decay_frac."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total is None or step < decay_start(total, cfg):
        return cfg.lr
    d0 = decay_start(total, cfg)
    frac = (step - d0) / max(1, total - d0)
    return cfg.lr * (1 - (1 - cfg.min_lr_frac) * frac)


# ---------------------------------------------------------------- training

def _optimizer(model, cfg: TrainConfig, device):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")


def train_step(model, opt, x, y, device, grad_clip: float):
    """One optimiser step on (x, y): bf16 autocast on CUDA, fp32 elsewhere; returns the loss tensor."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(input_ids=x, use_cache=False).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def train(cfg: TrainConfig, log=print) -> list[dict]:
    """Train cfg.models in lockstep; save each to out_dir/<name>; return one summary dict per model."""


    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if "toy-mamba" in cfg.models and cfg.fast_ssm == "off" and importlib.util.find_spec("mambapy") is None:
        raise RuntimeError("Training toy-mamba with --fast-ssm off needs the `mambapy` package (pip install "
                           "mambapy==1.2.0); without it transformers falls back to a sequential scan that is far "
                           "too slow to train.")
    if cfg.plan_dir and cfg.steps:
        raise ValueError("--plan-dir plans the step count from a time budget: leave --steps at 0.")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tok = load_tokenizer()
    t_data = time.perf_counter()
    stream = token_stream(cfg)
    data = Batches(stream, cfg)
    log(f"data: {len(stream):,} tokens, {data.n_seq:,} windows, {time.perf_counter() - t_data:.1f}s")


    models, opts, losses, gpu_ms, pending, paths, checks = {}, {}, {}, {}, {}, {}, {}
    x0, y0 = (t.to(device) for t in data.batch(0))
    for name in cfg.models:
        m = build_model(name, cfg.preset, seed=cfg.seed, vocab_size=len(tok), context=cfg.seq_len,
                        bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id).to(device)
        m.train()
        paths[name], checks[name] = choose_path(m, FAMILY[name], x0, y0, cfg.fast_ssm, log)
        models[name], opts[name] = m, _optimizer(m, cfg, device)
        losses[name], gpu_ms[name], pending[name] = [], 0.0, []
        log(f"{name}: {n_params(m):,} parameters, training path {paths[name]}")

    total = cfg.steps or None
    rendezvous = None
    if cfg.plan_dir:
        from backend.training.plan import Rendezvous

        rendezvous = Rendezvous(cfg.plan_dir, cfg.plan_models or cfg.models, timeout_s=max(120.0, cfg.time_budget_s))
    probe_t: list[float] = []
    plan: dict = {}
    logs = {n: [] for n in cfg.models}
    running = {n: [] for n in cfg.models}
    t0 = time.perf_counter()
    step = 0
    while True:
        elapsed = time.perf_counter() - t0
        if rendezvous is not None and total is None and step == cfg.plan_after:
            total, plan = _rendezvous(rendezvous, cfg, models, elapsed, probe_t, log)
        if rendezvous is None and total is None and elapsed >= cfg.time_budget_s * (1 - cfg.decay_frac):
            total = total_for_decay_at(step, cfg)
            log(f"step {step}: {elapsed:.0f}s passed, decay begins; total steps fixed at {total}")
        if total is not None and step >= total:
            break
        lr = lr_at(step, total, cfg)
        probing = rendezvous is not None and cfg.plan_after // 2 <= step < cfg.plan_after
        if probing:
            if cuda:
                synchronize(device)
            t_step = time.perf_counter()
        x, y = data.batch(step)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        for name, m in models.items():
            opt = opts[name]
            for g in opt.param_groups:
                g["lr"] = lr
            ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) if cuda else None
            t_cpu = time.perf_counter()
            if ev:
                ev[0].record()
            loss = train_step(m, opt, x, y, device, cfg.grad_clip)
            if ev:
                ev[1].record()
                pending[name].append(ev)
            else:
                gpu_ms[name] += (time.perf_counter() - t_cpu) * 1000
            running[name].append(loss.detach())
        if probing:
            if cuda:
                synchronize(device)
            probe_t.append(time.perf_counter() - t_step)
        step += 1
        if step % cfg.log_every == 0 or (total is not None and step >= total):
            if cuda:
                synchronize(device)
            for name in models:
                gpu_ms[name] += sum(a.elapsed_time(b) for a, b in pending[name])
                pending[name].clear()
                vals = torch.stack(running[name]).float().cpu().tolist()
                running[name].clear()
                if not all(math.isfinite(v) for v in vals):
                    raise FloatingPointError(f"{name}: loss became NaN/inf at step {step}; lower the lr.")
                losses[name].extend(vals)
                logs[name].append({"step": step, "tokens": step * cfg.batch_size * cfg.seq_len,
                                   "loss": sum(vals) / len(vals), "lr": lr,
                                   "elapsed_s": round(time.perf_counter() - t0, 2)})
            log(f"step {step}/{total or '?'} lr {lr:.2e} " +
                " ".join(f"{n}={logs[n][-1]['loss']:.3f} ({gpu_ms[n] / step:.0f}ms/step)" for n in models) +
                f" {time.perf_counter() - t0:.0f}s")

    wall = time.perf_counter() - t0
    dev_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    summaries = []
    for name, m in models.items():
        tail = losses[name][-max(1, min(20, len(losses[name]) // 5)):]
        summary = {
            "model": name, "family": FAMILY[name], "n_params": n_params(m), "preset": cfg.preset,
            "steps": step, "tokens_seen": step * cfg.batch_size * cfg.seq_len,
            "epochs": round(data.epochs(step), 3), "stream_tokens": int(len(stream)),
            "train_time_s": round(gpu_ms[name] / 1000, 1), "lockstep_wall_s": round(wall, 1),
            "final_loss": round(sum(tail) / len(tail), 4), "first_loss": round(losses[name][0], 4),
            "device": dev_name, "train_dtype": "bfloat16-autocast" if cuda else "float32",
            "save_dtype": cfg.save_dtype, "decay_start": decay_start(step, cfg),
            "train_path": paths[name], "path_check": checks[name], "batch_size": cfg.batch_size,
            "seq_len": cfg.seq_len, **({"plan": plan} if plan else {}),
            "command": reproduce_command(cfg, step),
        }
        save_model(m, tok, Path(cfg.out_dir) / name, cfg, summary, logs[name], TOKENIZER_DIR)
        summaries.append(summary)
        log(json.dumps(summary))
    if cfg.results:
        write_results(cfg, summaries)
    return summaries


def _rendezvous(rv, cfg: TrainConfig, models: dict, elapsed: float, probe_t: list[float], log) -> tuple[int, dict]:
    """Post this process's step time, wait for every process, return the shared total and the plan."""
    ms = 1000.0 * float(np.median(probe_t)) if probe_t else 1.0
    for name in models:
        rv.post(name, elapsed, ms, step=cfg.plan_after)
    posts = rv.gather()
    total = max(plan_total(posts, cfg.time_budget_s, cfg.plan_after), cfg.plan_after + 1)
    log(f"rendezvous: {[(p['model'], p['ms_per_step']) for p in posts]} -> total steps {total}")
    return total, {"posts": posts, "total": total, "budget_s": cfg.time_budget_s}


def reproduce_command(cfg: TrainConfig, steps: int) -> str:
    return (f"python -m backend train --preset {cfg.preset} --steps {steps} --seq-len {cfg.seq_len} "
            f"--batch-size {cfg.batch_size} --lr {cfg.lr} --warmup-steps {cfg.warmup_steps} "
            f"--decay-frac {cfg.decay_frac} --n-tokens {cfg.n_tokens} --seed {cfg.seed} "
            f"--data-seed {cfg.data_seed} --out {cfg.out_dir}")


def save_model(model, tok, folder: Path, cfg: TrainConfig, summary: dict, log_rows: list[dict], tok_dir) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.to(getattr(torch, cfg.save_dtype))
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    gc.do_sample, gc.max_new_tokens = False, 128
    model.save_pretrained(str(folder), safe_serialization=True)
    for f in Path(tok_dir).iterdir():
        shutil.copy(f, folder / f.name)
    with open(folder / "loss.jsonl", "w") as fh:
        for row in log_rows:
            fh.write(json.dumps(row) + "\n")
    (folder / "train_summary.json").write_text(json.dumps({**summary, "config": asdict(cfg)}, indent=1) + "\n")


def write_results(cfg: TrainConfig, summaries: list[dict]) -> None:
    """One "train" run with one measurement row per model, as store.RecordWriter JSONL."""
    write_jsonl_run(cfg.results, "train", asdict(cfg),
                    [{**s, "metric": "final_loss", "value": s["final_loss"]} for s in summaries],
                    {s["model"]: s["final_loss"] for s in summaries}, name="toy trio")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "out_dir":
            flag = "--out"
        if f.name == "time_budget_s":
            flag = "--time-budget"
        if f.name == "models":
            ap.add_argument(flag, default=",".join(MODEL_NAMES), help="comma-separated model names")
        elif f.name == "plan_models":
            ap.add_argument(flag, default="", help="comma-separated: every model in the rendezvous (default --models)")
        else:
            ap.add_argument(flag, dest=f.name, type=type(f.default), default=f.default)


def config_from_args(ns) -> TrainConfig:
    kw = {f.name: getattr(ns, f.name) for f in fields(TrainConfig) if hasattr(ns, f.name)}
    for key in ("models", "plan_models"):
        if isinstance(kw.get(key), str):
            kw[key] = [m for m in kw[key].split(",") if m]
    return TrainConfig(**kw)
