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

Issue 14 (retraining so context use can emerge) adds, all off by default so the bundled trio's command still
reproduces it:
    --mixture context            the training mixture of backend/toyworld/mixture.py (default v1, the original)
    --long-seq-len 8192 --long-frac 0.2 --long-every 2
                                 a short-to-long curriculum: every 2nd of the last long_frac of the steps trains
                                 on windows of long_seq_len tokens cut from a stream of long documents (the
                                 others stay on the mixture), batch size scaled so a step still sees about
                                 batch_size * seq_len tokens
    --probe-at 0.125,0.25,0.5,0.75,1
                                 at those fractions of the run, score the held-out probes of
                                 backend/training/emergence.py on the live model (the emergence curves)
    --models toy-hybrid,toy-transformer-deep --seed 1   the two new families; training seeds
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

os.environ.setdefault("USE_HUB_KERNELS", "0")  # never try to download kernels (before transformers loads)

import torch
import torch.nn.functional as F

from backend.device import resolve_device, synchronize
from backend.runinfo import write_jsonl_run
from backend.toyworld.tokenizer import TOKENIZER_DIR, load_tokenizer
from backend.training.config import TrainConfig, add_arguments, config_from_args, reproduce_command
from backend.training.data import (
    Batches,
    is_long_step,
    long_batch_size,
    long_start,
    long_stream,
    token_stream,
    tokens_seen,
)
from backend.training.emergence import build_probes, probe_steps, run_probes
from backend.training.paths import choose_path
from backend.training.plan import plan_total
from backend.training.trio import FAMILY, build_model, n_params

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
    if cfg.long_seq_len and cfg.long_every < 1:
        raise ValueError(f"--long-every must be 1 or more (1: every step of the long phase is long), got "
                         f"{cfg.long_every}.")
    if cfg.long_seq_len and not (0.0 < cfg.long_frac < 1.0):
        raise ValueError(f"--long-frac must be between 0 and 1 when --long-seq-len is set, got {cfg.long_frac}.")
    if cfg.long_seq_len and not cfg.steps and not cfg.plan_dir and cfg.long_frac > cfg.decay_frac:
        raise ValueError("A timed run fixes its step count only when the decay begins, so the long phase cannot be "
                         "longer than the decay: give --steps (or --plan-dir), or --long-frac <= --decay-frac.")
    fractions = [float(f) for f in cfg.probe_at.split(",") if f.strip()] if cfg.probe_at else []
    if any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"--probe-at takes fractions of the run in (0, 1], e.g. 0.25,0.5,1; got {cfg.probe_at!r}.")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tok = load_tokenizer()
    t_data = time.perf_counter()
    stream = token_stream(cfg)
    data = Batches(stream, cfg)
    log(f"data: {len(stream):,} tokens, {data.n_seq:,} windows, {time.perf_counter() - t_data:.1f}s")
    long_data = None
    if cfg.long_seq_len:
        t_long = time.perf_counter()
        lstream = long_stream(cfg)
        long_data = Batches(lstream, cfg, cfg.long_seq_len, long_batch_size(cfg))
        log(f"long phase data: {len(lstream):,} tokens, {long_data.n_seq:,} windows of {cfg.long_seq_len}, batch "
            f"{long_data.bs}, {time.perf_counter() - t_long:.1f}s")
    probes = build_probes(tok, cfg.probe_n, seed=cfg.seed, passkey_tokens=cfg.probe_tokens) if fractions else []
    probe_rows: dict[str, list[dict]] = {n: [] for n in cfg.models}
    probe_at: set[int] = set()

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
        if total is not None and fractions and not probe_at:
            probe_at = set(probe_steps(total, fractions))
        if total is not None and step >= total:
            break
        lr = lr_at(step, total, cfg)
        long_phase = long_data is not None and is_long_step(step, total, cfg)
        probing = rendezvous is not None and cfg.plan_after // 2 <= step < cfg.plan_after
        if probing:
            if cuda:
                synchronize(device)
            t_step = time.perf_counter()
        x, y = long_data.batch(step) if long_phase else data.batch(step)
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
                logs[name].append({"step": step, "tokens": tokens_seen(step, total, cfg),
                                   "loss": sum(vals) / len(vals), "lr": lr,
                                   "elapsed_s": round(time.perf_counter() - t0, 2)})
            log(f"step {step}/{total or '?'} lr {lr:.2e} " +
                " ".join(f"{n}={logs[n][-1]['loss']:.3f} ({gpu_ms[n] / step:.0f}ms/step)" for n in models) +
                f" {time.perf_counter() - t0:.0f}s")
        if step in probe_at:
            for name, m in models.items():
                t_p = time.perf_counter()
                for row in run_probes(m, probes, device, pad_id=tok.pad_token_id):
                    probe_rows[name].append({"step": step, "tokens": tokens_seen(step, total, cfg), **row})
                log(f"probes {name} step {step}: " + " ".join(f"{r['task']}={r['value']:.2f}"
                                                              for r in probe_rows[name][-len(probes):]) +
                    f" ({time.perf_counter() - t_p:.1f}s)")

    wall = time.perf_counter() - t0
    dev_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    summaries = []
    for name, m in models.items():
        tail = losses[name][-max(1, min(20, len(losses[name]) // 5)):]
        summary = {
            "model": name, "family": FAMILY[name], "n_params": n_params(m), "preset": cfg.preset,
            "steps": step, "tokens_seen": tokens_seen(step, total, cfg), "mixture": cfg.mixture, "seed": cfg.seed,
            "epochs": round(data.epochs(step), 3), "stream_tokens": int(len(stream)),
            "train_time_s": round(gpu_ms[name] / 1000, 1), "lockstep_wall_s": round(wall, 1),
            "final_loss": round(sum(tail) / len(tail), 4), "first_loss": round(losses[name][0], 4),
            "device": dev_name, "train_dtype": "bfloat16-autocast" if cuda else "float32",
            "save_dtype": cfg.save_dtype, "decay_start": decay_start(step, cfg),
            "train_path": paths[name], "path_check": checks[name], "batch_size": cfg.batch_size,
            "seq_len": cfg.seq_len, **({"plan": plan} if plan else {}),
            **({"long_phase": {"seq_len": cfg.long_seq_len, "batch_size": long_batch_size(cfg),
                               "start_step": long_start(step, cfg), "every": cfg.long_every}} if cfg.long_seq_len else {}),
            **({"probes": probe_rows[name]} if probe_rows[name] else {}),
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
    rows = []
    for s in summaries:
        base = {k: v for k, v in s.items() if k != "probes"}
        rows.append({**base, "metric": "final_loss", "value": s["final_loss"]})
        for p in s.get("probes", []):  # the emergence curves: one row per probe, step and model
            rows.append({**{k: base.get(k) for k in ("model", "family", "n_params", "preset", "mixture", "seed",
                                                 "device", "train_path")},
                         "metric": f"probe:{p['task']}", **p})
    write_jsonl_run(cfg.results, "train", asdict(cfg), rows,
                    {s["model"]: s["final_loss"] for s in summaries},
                    name=f"toy models, {cfg.mixture} mixture, seed {cfg.seed}")


__all__ = ["TrainConfig", "add_arguments", "config_from_args", "train", "write_results"]
