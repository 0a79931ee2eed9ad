"""The benchmark sweep's plan: its configuration (`SweepConfig`) and the ordered points of one model
(`plan_points`), with the time a batch or long point should take from the one before (`predicted_s`).
`backend.bench.sweep` runs them (and re-exports these names)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SweepConfig:
    models: list[str]
    prompt_lens: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
    new_tokens: list[int] = field(default_factory=lambda: [128])
    long_from: int = 16384  # prompts this long or longer run after the batch sweep
    batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384])
    batch_prompt_len: int = 2048  # the Mamba paper's setting
    batch_new_tokens: int = 128
    warmup: int = 1
    repeats: int = 3
    hf_baseline: bool = True
    eager_baseline: bool = True
    baseline_prompt_len: int = 512
    baseline_new_tokens: int = 32
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    budget_s: float | None = None  # wall-clock budget for the whole sweep (points not started are listed)
    budget_per_model_s: float | None = None
    slow_run_s: float = 5.0  # a warm-up slower than this gets one timed repeat
    isolate: bool = False  # each model in its own process: a crash (e.g. a CUDA illegal address) loses one model
    refine_batch: int = 2  # bisection steps between the largest batch that ran and the one out of memory
    rounds: int = 1  # the model list run this many times in turn (A B C A B C): on a machine whose speed drifts,
    #                  each model's median then spans the same stretch of time as the others' (rows carry "round")

    def validate(self) -> None:
        if not self.models:
            raise ValueError("Name at least one model to benchmark (--models).")
        for name, values in (("prompt lengths", self.prompt_lens), ("new tokens", self.new_tokens),
                             ("batch sizes", self.batches)):
            if not values or any(int(v) < 1 for v in values):
                raise ValueError(f"The {name} must be positive integers, got {values}.")
        if min(self.new_tokens) < 2 or self.batch_new_tokens < 2 or self.baseline_new_tokens < 2:
            raise ValueError("Each point needs at least 2 new tokens (TPOT is measured after the first).")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("Use at least 1 repeat and a non-negative warm-up count.")
        if self.refine_batch < 0:
            raise ValueError(f"--refine-batch counts bisection steps: 0 or more, got {self.refine_batch}.")
        if self.rounds < 1:
            raise ValueError(f"Use at least 1 round (--rounds), got {self.rounds}.")


@dataclass
class _Plan:
    phase: str  # "context" | "batch" | "long" | "hf-generate" | "eager"
    batch: int
    prompt_len: int
    new_tokens: int


def plan_points(cfg: SweepConfig) -> list[_Plan]:
    """The ordered points for one model (skips are decided while running)."""
    short = [p for p in sorted(set(cfg.prompt_lens)) if p < cfg.long_from]
    long = [p for p in sorted(set(cfg.prompt_lens)) if p >= cfg.long_from]
    plans = [_Plan("context", 1, p, n) for n in cfg.new_tokens for p in short]
    plans += [_Plan("batch", b, cfg.batch_prompt_len, cfg.batch_new_tokens) for b in sorted(set(cfg.batches))]
    if cfg.hf_baseline:
        plans.append(_Plan("hf-generate", 1, cfg.baseline_prompt_len, cfg.baseline_new_tokens))
    if cfg.eager_baseline:
        plans.append(_Plan("eager", 1, cfg.baseline_prompt_len, cfg.baseline_new_tokens))
    plans += [_Plan("long", 1, p, n) for n in cfg.new_tokens for p in long]
    return plans


def predicted_s(last: tuple[int, float] | None, plan: _Plan) -> float | None:
    """Seconds the next batch / long point should take: the last point of its phase scaled by batch x prompt
    tokens (decode and prefill both grow about linearly there); None without a previous point."""
    if last is None or plan.phase not in ("batch", "long"):
        return None
    size, seconds = last
    return seconds * plan.batch * plan.prompt_len / max(1, size)
