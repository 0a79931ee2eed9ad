"""ExperimentConfig: everything that defines a run, passed whole to the runner and stored with the run.

The UI builds one, the CLI builds the same from its flags (`config_from_args`), and `to_cli()` gives the
equivalent `python -m backend experiment ...` command, so a run can be repeated headless.

Sweep keys per experiment (long context: per task):
  fewshot       k        number of in-context examples
  long-context  passkey: length (target tokens), depth (where the pass key sits, 0 start, 1 end), keys
                (needles in the document: 1 pass key + keys-1 distractors); recall: pairs (key-value lines);
                copy: words (words to repeat)
  cot           steps    reasoning steps of the problem;    mode   "direct" or "cot"
  rag           k        passages in the prompt (0 = closed-book); the gold passage's position is uniform over them

The RAG experiment's `data` is a plan file written by `python -m backend experiment rag --save-plan FILE`
(contexts retrieved once, so a machine without faiss / sentence-transformers can run it: `--plan FILE`).
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from backend.generation.interface import GenSettings
from backend.models import registry

EXPERIMENTS = ("fewshot", "long-context", "cot", "rag")
RUN_KIND = {e: f"experiment-{e}" for e in EXPERIMENTS}
DEFAULT_TASK = {"fewshot": "arbitrary", "long-context": "passkey", "cot": "arithmetic", "rag": "toy-rag"}
DATA_SCHEMA = {"fewshot": "classification", "long-context": "passkey", "cot": "gsm8k", "rag": "rag-plan"}

# (sweep key, CLI flag, element type)
SWEEP_FLAGS: dict[str, tuple[str, type]] = {
    "k": ("--ks", int),
    "length": ("--lengths", int),
    "depth": ("--depths", float),
    "steps": ("--steps", int),
    "mode": ("--modes", str),
    "keys": ("--keys", int),
    "pairs": ("--pairs", int),
    "words": ("--words", int),
}
SWEEP_KEYS = {"fewshot": ("k",), "long-context": ("length", "depth", "keys", "pairs", "words"),
              "cot": ("steps", "mode"), "rag": ("k",)}
TASK_SWEEP_KEYS = {("long-context", "passkey"): ("length", "depth", "keys"), ("long-context", "recall"): ("pairs",),
                   ("long-context", "copy"): ("words",)}  # where a task sweeps fewer keys than its experiment

# "quick": about a minute or two per experiment on a 2-core CPU with the bundled models (UI and CLI default).
# "full": the GPU run committed under results/. Each profile gives the experiment's default task; TASK_PROFILES
# the other tasks whose sweep differs. Every sweep reaches past what training showed (backend.toyworld TRAINED),
# so the pages can draw in- and out-of-distribution panels.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "fewshot": {"n": 40, "sweep": {"k": [0, 1, 2, 4, 8, 16]}},
        "long-context": {"n": 2, "sweep": {"length": [256, 512, 1536], "depth": [0.0, 0.5, 1.0], "keys": [1, 3]}},
        "cot": {"n": 10, "sweep": {"steps": [2, 5, 7], "mode": ["direct", "cot"]}},
        "rag": {"n": 12, "sweep": {"k": [0, 1, 2, 4]}},
    },
    "full": {
        "fewshot": {"n": 200, "sweep": {"k": [0, 1, 2, 4, 8, 16, 32]}},
        "long-context": {"n": 12, "sweep": {"length": [256, 512, 1024, 2048, 4096, 8192],
                                            "depth": [0.0, 0.25, 0.5, 0.75, 1.0], "keys": [1, 4]}},
        "cot": {"n": 200, "sweep": {"steps": [1, 2, 3, 4, 5, 6, 7, 8, 10], "mode": ["direct", "cot"]}},
        "rag": {"n": 200, "sweep": {"k": [0, 1, 2, 4, 8]}},
    },
}
TASK_PROFILES: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "quick": {("long-context", "recall"): {"n": 16, "sweep": {"pairs": [2, 4, 8, 16, 32]}},
              ("long-context", "copy"): {"n": 8, "sweep": {"words": [5, 10, 20, 30, 45]}}},
    "full": {("long-context", "recall"): {"n": 200, "sweep": {"pairs": [2, 4, 8, 16, 24, 32]}},
             ("long-context", "copy"): {"n": 120, "sweep": {"words": [5, 10, 20, 30, 45, 60]}}},
}


class ConfigError(ValueError):
    """An experiment configuration is invalid; the message says what to change."""


@dataclass
class ExperimentConfig:
    """One experiment run. `n` is instances per sweep point (the same instances for every model).

    task: built-in task name ("" = the experiment's default; for fewshot a toy-world few-shot task).
    data: path of a user JSONL file (schema per experiment: see backend.experiments.datasets); when
      set, instances come from it instead of the toy world.
    max_new_tokens: overrides the task's own limit when set.
    """
    experiment: str
    models: list[str]
    n: int = 10
    seed: int = 0
    sweep: dict[str, list] = field(default_factory=dict)
    task: str = ""
    data: str | None = None
    max_new_tokens: int | None = None
    settings: GenSettings = field(default_factory=GenSettings)

    def __post_init__(self) -> None:
        if isinstance(self.settings, dict):
            self.settings = GenSettings(**self.settings)
        self.validate()

    def validate(self) -> None:
        if self.experiment not in EXPERIMENTS:
            raise ConfigError(f"Unknown experiment {self.experiment!r}; choose one of {', '.join(EXPERIMENTS)}.")
        if not self.models:
            raise ConfigError("Pick at least one model.")
        if len(set(self.models)) != len(self.models):
            raise ConfigError("A model is listed twice; list each model once.")
        if not 1 <= self.n <= 100_000:
            raise ConfigError(f"n (instances per point) must be between 1 and 100000, got {self.n}.")
        allowed = SWEEP_KEYS[self.experiment]
        for key, values in self.sweep.items():
            if key not in allowed:
                raise ConfigError(f"{self.experiment} sweeps {', '.join(allowed)}, not {key!r}.")
            if not values:
                raise ConfigError(f"Give at least one value for {SWEEP_FLAGS[key][0]}.")
        for k in self.sweep.get("k", []):
            if k < 0:
                raise ConfigError(f"k must be 0 or more, got {k}.")
        for length in self.sweep.get("length", []):
            if length < 16:
                raise ConfigError(f"Context lengths must be at least 16 tokens, got {length}.")
        for d in self.sweep.get("depth", []):
            if not 0 <= d <= 1:
                raise ConfigError(f"Depths are fractions between 0 and 1, got {d}.")
        for s in self.sweep.get("steps", []):
            if s < 1:
                raise ConfigError(f"steps must be 1 or more, got {s}.")
        for m in self.sweep.get("mode", []):
            if m not in ("direct", "cot"):
                raise ConfigError(f"mode must be 'direct' or 'cot', got {m!r}.")
        for key, low in (("keys", 1), ("pairs", 1), ("words", 1)):
            for v in self.sweep.get(key, []):
                if v < low:
                    raise ConfigError(f"{SWEEP_FLAGS[key][0]} values must be {low} or more, got {v}.")
        own = TASK_SWEEP_KEYS.get((self.experiment, self.task or DEFAULT_TASK[self.experiment]))
        if own and not self.data:
            for key in self.sweep:
                if key not in own:
                    flags = ", ".join(SWEEP_FLAGS[k][0] for k in own)
                    raise ConfigError(f"The {self.task or DEFAULT_TASK[self.experiment]} task sweeps {flags}; "
                                      f"drop {SWEEP_FLAGS[key][0]}.")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 4096:
            raise ConfigError(f"max_new_tokens must be between 1 and 4096, got {self.max_new_tokens}.")

    @property
    def kind(self) -> str:
        return RUN_KIND[self.experiment]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_cli(self) -> str:
        """The equivalent command line (run from the repository root)."""
        parts = ["python", "-m", "backend", "experiment", self.experiment,
                 "--models", ",".join(self.models), "--n", str(self.n), "--seed", str(self.seed)]
        for key in SWEEP_KEYS[self.experiment]:
            if key in self.sweep:
                flag, _ = SWEEP_FLAGS[key]
                parts += [flag, ",".join(_fmt(v) for v in self.sweep[key])]
        if self.task:
            parts += ["--task", self.task]
        if self.data:
            parts += ["--plan" if self.experiment == "rag" else "--data", self.data]
        if self.max_new_tokens is not None:
            parts += ["--max-new-tokens", str(self.max_new_tokens)]
        return shlex.join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v == int(v):
        return f"{v:.1f}"
    return str(v)


def default_models() -> list[str]:
    """The bundled models trained like the default transformer (same mixture and tokens, from train_summary.json)
    when the registry has two or more, else its default pair. A bundled model of another recipe (toy-hybrid,
    issue 14's context mixture, beside the issue-13 trio) stays selectable but out of the defaults: a default
    comparison must not mix a training difference into an architecture one."""
    specs = [s for s in registry.list_specs() if s.source == "bundled"]
    ref = next((_recipe(s) for s in specs if s.name == registry.default_pair()[1]), None)
    bundled = [s.name for s in specs if _recipe(s) == ref]
    return bundled if len(bundled) >= 2 else list(registry.default_pair())


def _recipe(spec) -> tuple | None:
    """(mixture, tokens seen) of a bundled folder's train_summary.json; None without one (a placeholder)."""
    summary = registry.train_summary(spec.location)
    if not summary:
        return None
    return summary.get("mixture") or summary.get("config", {}).get("mixture"), summary.get("tokens_seen")


def profile_of(experiment: str, task: str = "", profile: str = "quick") -> dict[str, Any]:
    """{"n", "sweep"} of a profile for an experiment's task (its default task when `task` is empty)."""
    if profile not in PROFILES:
        raise ConfigError(f"Unknown profile {profile!r}; use one of {', '.join(PROFILES)}.")
    return TASK_PROFILES[profile].get((experiment, task or DEFAULT_TASK[experiment]), PROFILES[profile][experiment])


def default_config(experiment: str, models: list[str], profile: str = "quick", task: str = "") -> ExperimentConfig:
    p = profile_of(experiment, task, profile)
    return ExperimentConfig(experiment=experiment, models=list(models), n=p["n"],
                            sweep={k: list(v) for k, v in p["sweep"].items()}, task=task or DEFAULT_TASK[experiment])


def parse_list(text: str, typ: type, flag: str) -> list:
    out = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        try:
            out.append(typ(piece))
        except ValueError:
            raise ConfigError(f"{flag}: {piece!r} is not a valid {typ.__name__}; give a comma-separated list.") from None
    if not out:
        raise ConfigError(f"{flag} needs at least one value.")
    return out
