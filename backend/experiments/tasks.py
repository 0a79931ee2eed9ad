"""Tasks described as data, in the spirit of lm-evaluation-harness task configs.

A `TaskSpec` says how to turn a document (a dict of fields) into a prompt, how to pick and render
few-shot examples, how to read an answer out of the output and how to score it. An `Instance` is one
evaluated item: the query document, its few-shot examples (already chosen, so every model sees the
same prompt), the reference and the sweep point it belongs to.

Prompt layout (lm-eval's defaults: fewshot_delimiter "\\n\\n", target follows the text directly):

    {description}{example_1 text}{example_1 target}{delim}...{example_k text}{example_k target}{delim}{query text}

Templates are Python format strings over the document's fields, e.g. "Q: {question}\\nA:".
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from backend.experiments.metrics import METRICS


class TaskError(ValueError):
    """A task or its data is unusable; the message is a sentence for the UI and the CLI."""


@dataclass
class FewShotSpec:
    """How in-context examples are chosen: `sampler` "seeded" (random.Random(seed) without
    replacement, never the query itself) or "first_n" (the pool in order, lm-eval's first_n);
    `fixed` lists pool indices to use in that order instead (e.g. hand-picked exemplars)."""

    sampler: str = "seeded"
    fixed: list[int] | None = None

    def __post_init__(self) -> None:
        if self.sampler not in ("seeded", "first_n"):
            raise TaskError(f"Unknown few-shot sampler {self.sampler!r}; use 'seeded' or 'first_n'.")


@dataclass
class TaskSpec:
    """One task as data.

    output_type: "generate" (greedy generation, then extraction and `metric`) or "choices" (each
      choice scored by Generator.loglikelihood as a continuation of the prompt; the highest wins;
      accuracy). `choices_field` names the document field listing the choices.
    extract: {"strict": rule, "flexible": rule} (see metrics.EXTRACTORS); `primary` picks the one
      reported as `score`; both are recorded. `filter_metrics` scores some filters with another metric
      (e.g. {"within1": "within_one"}).
    version: bumped whenever the template, the generator or the scoring changes, and recorded with every
      prediction and measurement row (params.task_version), so stored results keep their meaning.
    """

    name: str
    template: str
    version: int = 1
    target: str = " {answer}"
    description: str = ""
    fewshot_delimiter: str = "\n\n"
    fewshot: FewShotSpec = field(default_factory=FewShotSpec)
    output_type: str = "generate"
    choices_field: str = "choices"
    choice_prefix: str = " "
    reference_field: str = "answer"
    extract: dict[str, str] = field(default_factory=lambda: {"strict": "first_line", "flexible": "first_line"})
    primary: str = "flexible"
    metric: str = "exact_match"
    filter_metrics: dict[str, str] = field(default_factory=dict)
    stop: list[str] = field(default_factory=lambda: ["\n\n"])
    max_new_tokens: int = 32
    store_prompt_chars: int | None = None  # keep only the head and tail of longer prompts in the store

    def __post_init__(self) -> None:
        if self.output_type not in ("generate", "choices"):
            raise TaskError(f"Task {self.name}: output_type must be 'generate' or 'choices'.")
        if self.metric not in METRICS and self.output_type == "generate":
            raise TaskError(f"Task {self.name}: unknown metric {self.metric!r}; choose one of {sorted(METRICS)}.")
        bad = sorted(m for m in self.filter_metrics.values() if m not in METRICS)
        if bad:
            raise TaskError(f"Task {self.name}: unknown metric {bad[0]!r}; choose one of {sorted(METRICS)}.")
        if self.primary not in self.extract:
            raise TaskError(f"Task {self.name}: primary filter {self.primary!r} is not one of {sorted(self.extract)}.")


# Instance params that describe one item rather than the sweep point it belongs to (aggregates group by the rest).
INSTANCE_KEYS = ("query", "line", "prompt_tokens", "task", "task_version", "distance", "distractors", "position",
                 "listed")


@dataclass
class Instance:
    """One evaluated item at one sweep point. `id` is stable across runs and unique within a run."""

    id: str
    doc: dict[str, Any]
    reference: str
    params: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    task: str = ""


def fill(template: str, doc: dict[str, Any], task_name: str = "") -> str:
    try:
        return template.format_map(doc)
    except KeyError as e:
        raise TaskError(
            f"Task {task_name or '?'}: the template needs field {e.args[0]!r}, which the data does not have "
            f"(fields present: {', '.join(sorted(doc)) or 'none'})."
        ) from None


def render_prompt(task: TaskSpec, inst: Instance) -> str:
    shots = [fill(task.template, ex, task.name) + fill(task.target, ex, task.name) for ex in inst.examples]
    query = fill(task.template, inst.doc, task.name)
    return task.description + task.fewshot_delimiter.join([*shots, query])


def elide(text: str, limit: int | None) -> str:
    """`text` itself, or its head and tail with the number of characters left out in between.

    Long-context prompts are regenerated exactly from the run's config and seed, so the store keeps only
    enough of them to read (a results file of 8k-token documents per model would weigh megabytes)."""
    if limit is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


def stable_seed(*parts: Any) -> int:
    """A seed from values, stable across processes (Python's hash() is salted per process)."""
    return zlib.crc32("|".join(map(str, parts)).encode())


def select_examples(
    pool: list[dict[str, Any]], k: int, spec: FewShotSpec, rng: random.Random, exclude: int | None = None
) -> list[dict[str, Any]]:
    """Pick k examples from `pool` (never the item at index `exclude`)."""
    if k <= 0:
        return []
    candidates = [i for i in range(len(pool)) if i != exclude]
    if spec.fixed is not None:
        bad = [i for i in spec.fixed if not 0 <= i < len(pool)]
        if bad:
            raise TaskError(f"Fixed few-shot indices {bad} are outside the pool of {len(pool)} examples.")
        order = [i for i in spec.fixed if i != exclude]
    elif spec.sampler == "first_n":
        order = candidates
    else:
        order = rng.sample(candidates, min(k, len(candidates)))
    if len(order) < k:
        raise TaskError(
            f"Asked for {k} few-shot examples but only {len(order)} are available; lower k or add examples."
        )
    return [pool[i] for i in order[:k]]
