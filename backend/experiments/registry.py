"""The task registry and the Plan: what an experiment runs (its tasks and the exact instances every model
sees), and the generic plan shapes shared by toy-world and user-data tasks.

Task providers register plan builders with `register_task` (the toy world's in
`backend.experiments.toytasks`, the RAG experiment's in `backend.experiments.rag`, tests their own); this
module imports no task, so any provider can import it. `backend.experiments.plans.build_plan` loads the
built-in providers and builds a config's plan.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.experiments.config import ExperimentConfig
from backend.experiments.tasks import Instance, TaskError, TaskSpec, select_examples, stable_seed


@dataclass
class Plan:
    tasks: dict[str, TaskSpec]
    instances: list[Instance]
    warnings: list[str] = field(default_factory=list)  # e.g. malformed lines skipped in a data file
    # extra measurement rows once a run completes: measure(plan, prediction rows, {model: family}) -> rows
    # (a module-level function, so the plan still pickles for parallel workers; e.g. backend.experiments.rag.rag_measurements)
    measure: Callable[..., list[dict]] | None = None


PlanBuilder = Callable[..., Plan]  # (config, count_tokens=None) -> Plan
_TASKS: dict[tuple[str, str], PlanBuilder] = {}


def register_task(experiment: str, name: str, builder: PlanBuilder) -> None:
    """Make `name` available as `config.task` for `experiment`."""
    _TASKS[(experiment, name)] = builder


def task_names(experiment: str) -> list[str]:
    """The registered task names of `experiment` (importing backend.experiments.plans registers the built-in
    ones)."""
    return sorted(name for (exp, name) in _TASKS if exp == experiment)


# ----------------------------------------------------------------------------------------------------
# Generic plan shapes shared by toy-world and user-data tasks


def fewshot_plan(config: ExperimentConfig, task: TaskSpec, pool: list[dict[str, Any]],
                 queries: list[dict[str, Any]] | None = None) -> Plan:
    """n queries, each asked at every k with a nested set of examples (the k=2 examples are the first
    two of the k=4 examples), so k is the only thing that changes along the curve.

    With `queries` None, queries are drawn from `pool` and an example is never its own query.
    """
    ks = config.sweep.get("k", [0])
    rng = random.Random(stable_seed(config.seed, "fewshot-queries", task.name))
    if queries is None:
        if len(pool) < 2:
            raise TaskError("A few-shot task needs at least 2 examples.")
        q_idx = rng.sample(range(len(pool)), min(config.n, len(pool)))
        chosen = [(i, pool[i]) for i in q_idx]
    else:
        chosen = [(None, q) for q in queries[: config.n]]
    instances = []
    for qi, (pool_index, doc) in enumerate(chosen):
        shot_rng = random.Random(stable_seed(config.seed, "fewshot-shots", task.name, qi))
        kmax = max(ks)
        order = select_examples(pool, min(kmax, len(pool) - (pool_index is not None)), task.fewshot,
                                shot_rng, exclude=pool_index) if kmax else []
        for k in ks:
            if k > len(order):
                raise TaskError(f"k={k} needs {k} examples but the pool has only {len(order)} besides the query.")
            instances.append(Instance(id=f"k={k}/q={qi}", doc=doc, reference=str(doc[task.reference_field]),
                                      params={"k": k, "query": qi}, examples=order[:k], task=task.name))
    return Plan({task.name: task}, instances)


def builder_of(experiment: str, name: str) -> PlanBuilder | None:
    return _TASKS.get((experiment, name))
