"""TrainConfig: every setting of a training run, and its command-line flags (no torch: the CLI parses with it).

Each field is a flag of `python -m backend train` / `train-all` (`--out` for out_dir, `--time-budget` for
time_budget_s); `reproduce_command` writes the flags that rebuild a finished run's schedule and data.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

from backend.training.trio import MODEL_NAMES


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
    mixture: str = "v1"  # training mixture (backend/toyworld/mixture.py MIXTURES)
    long_seq_len: int = 0  # curriculum: window length of the final long phase (0 = no long phase)
    long_frac: float = 0.0  # share of the steps in the long phase (the last ones)
    long_every: int = 1  # in the long phase, every long_every-th step is long, the others stay on the mixture
    # (1, every step long, is what the first run of results/train14_h100_s0_longall.jsonl did: kept as the
    # default so that run's stored command still reproduces it; scripts/gpu_run.sh retrain14 passes 2)
    long_stream_file: str = ""  # .npy of the long-document stream (like stream_file)
    probe_at: str = ""  # comma-separated fractions of the run at which to run the emergence probes
    probe_n: int = 64  # items per probe set
    probe_tokens: int = 2048  # length of the pass-key probe's documents


def reproduce_command(cfg: TrainConfig, steps: int) -> str:
    return (f"python -m backend train --preset {cfg.preset} --steps {steps} --seq-len {cfg.seq_len} "
            f"--batch-size {cfg.batch_size} --lr {cfg.lr} --warmup-steps {cfg.warmup_steps} "
            f"--decay-frac {cfg.decay_frac} --n-tokens {cfg.n_tokens} --seed {cfg.seed} "
            f"--data-seed {cfg.data_seed} --out {cfg.out_dir}" +
            (f" --mixture {cfg.mixture}" if cfg.mixture != "v1" else "") +
            (f" --long-seq-len {cfg.long_seq_len} --long-frac {cfg.long_frac} --long-every {cfg.long_every}"
             if cfg.long_seq_len else "") +
            (f" --probe-at {cfg.probe_at} --probe-n {cfg.probe_n} --probe-tokens {cfg.probe_tokens}"
             if cfg.probe_at else ""))


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
