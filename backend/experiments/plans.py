"""Turn an ExperimentConfig into a Plan: the tasks and the exact instances every model will see.

Instances are built from the config's seed alone (stable_seed; never Python's salted hash), so the same
config gives the same prompts in any process, and a resumed run recognises its finished instances by id.

Sources: built-in task providers (the toy world registers its own in `backend.experiments.toytasks`;
tests register tiny ones with `register_task`) and user JSONL files (`config.data`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.experiments.config import DATA_SCHEMA, ExperimentConfig
from backend.experiments.datasets import load_jsonl
from backend.experiments.tasks import FewShotSpec, Instance, TaskError, TaskSpec, select_examples, stable_seed


@dataclass
class Plan:
    tasks: dict[str, TaskSpec]
    instances: list[Instance]
    warnings: list[str] = field(default_factory=list)  # e.g. malformed lines skipped in a data file
    # extra measurement rows once a run completes: measure(plan, prediction rows, {model: family}) -> rows
    # (a module-level function, so the plan still pickles for parallel workers; e.g. backend.rag.rag_measurements)
    measure: Callable[..., list[dict]] | None = None


PlanBuilder = Callable[..., Plan]  # (config, count_tokens=None) -> Plan
_TASKS: dict[tuple[str, str], PlanBuilder] = {}


def register_task(experiment: str, name: str, builder: PlanBuilder) -> None:
    """Make `name` available as `config.task` for `experiment`."""
    _TASKS[(experiment, name)] = builder


def task_names(experiment: str) -> list[str]:
    _load_builtin()
    return sorted(name for (exp, name) in _TASKS if exp == experiment)


def _load_builtin() -> None:
    try:
        import backend.experiments.toytasks  # noqa: F401  (registers the toy-world tasks)
    except ImportError as e:  # the toy world is optional for user data and tests
        if "toyworld" not in str(e):
            raise


def build_plan(config: ExperimentConfig, count_tokens: Callable[[str], int] | None = None) -> Plan:
    """`count_tokens` (the first model's tokenizer) lets length-targeted tasks hit token counts exactly."""
    if config.data:
        return _data_plan(config)
    _load_builtin()
    names = task_names(config.experiment)
    name = config.task or (names[0] if names else "")
    builder = _TASKS.get((config.experiment, name))
    if builder is None:
        raise TaskError(
            f"No built-in {config.experiment} task named {name!r}. Available: {', '.join(names) or 'none'} "
            "(or pass a JSONL file with --data)."
        )
    plan = builder(config, count_tokens=count_tokens)
    # query-major order: query 0 at every sweep point, then query 1, ... so a run stopped early (cancel, time
    # limit) still covers every point with about the same n
    plan.instances.sort(key=lambda i: i.params.get("query", 0))
    return plan


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


# ----------------------------------------------------------------------------------------------------
# User JSONL data

USER_FEWSHOT = TaskSpec(name="user-classification", template="Text: {text}\nLabel:", target=" {label}",
                        output_type="choices", choices_field="choices", reference_field="label")
USER_PASSKEY = TaskSpec(name="user-passkey", template="{context}\n\nQuestion: {question}\nAnswer:",
                        target=" {answer}", extract={"strict": "first_line", "flexible": "first_line"},
                        metric="token_f1", primary="flexible", stop=["\n"], max_new_tokens=32,
                        store_prompt_chars=3000)
USER_COT = TaskSpec(name="user-cot", template="Question: {question}\nAnswer: Let's think step by step.",
                    target=" {solution} The answer is {answer}.",
                    extract={"strict": "answer_is", "flexible": "last_number"}, primary="strict",
                    stop=["\n\nQuestion:", "Question:"], max_new_tokens=256, fewshot=FewShotSpec("first_n"))
USER_DIRECT = TaskSpec(name="user-direct", template="Question: {question}\nAnswer:", target=" The answer is {answer}.",
                       extract={"strict": "answer_is", "flexible": "first_number"}, primary="flexible",
                       stop=["\n"], max_new_tokens=24)


def _rag_file_plan(config: ExperimentConfig) -> Plan:
    """A RAG plan saved by `experiment rag --save-plan` (no retrieval here: faiss is not needed), cut to the
    config's k values and its first n queries."""
    import json

    from backend.rag import load_rag_plan

    try:
        plan = load_rag_plan(config.data)
    except FileNotFoundError:
        raise TaskError(f"There is no plan file {config.data!r}; write one with "
                        "`python -m backend experiment rag --save-plan FILE`.") from None
    except (json.JSONDecodeError, TypeError, KeyError, UnicodeDecodeError) as e:
        raise TaskError(f"{config.data} is not a RAG plan file ({e}); write one with "
                        "`python -m backend experiment rag --save-plan FILE`.") from None
    ks = set(config.sweep.get("k") or [])
    plan.instances = [i for i in plan.instances
                      if (not ks or i.params.get("k") in ks) and i.params.get("query", 0) < config.n]
    if not plan.instances:
        raise TaskError(f"{config.data} has no question at k in {sorted(ks)}; change --ks or --n.")
    return plan


def _data_plan(config: ExperimentConfig) -> Plan:
    if config.experiment == "rag":
        return _rag_file_plan(config)
    loaded = load_jsonl(config.data, DATA_SCHEMA[config.experiment])
    recs = loaded.records
    if config.experiment == "fewshot":
        labels = sorted({r["label"] for r in recs})
        if len(labels) < 2:
            raise TaskError(f"{config.data}: a classification file needs at least two different labels.")
        pool = [{**r, "choices": labels} for r in recs]
        plan = fewshot_plan(config, USER_FEWSHOT, pool)
    elif config.experiment == "long-context":
        instances = []
        for r in recs[: config.n]:
            params = {"length": None, "depth": r.get("depth"), "line": r["_line"]}
            instances.append(Instance(id=f"line={r['_line']}", doc=r, reference=r["answer"], params=params,
                                      task=USER_PASSKEY.name))
        plan = Plan({USER_PASSKEY.name: USER_PASSKEY}, instances)
    else:
        wanted = set(config.sweep.get("steps", []))
        modes = config.sweep.get("mode", ["direct", "cot"])
        per_steps: dict[int, int] = {}
        instances = []
        for r in recs:
            s = r["steps"]
            if (wanted and s not in wanted) or per_steps.get(s, 0) >= config.n:
                continue
            per_steps[s] = per_steps.get(s, 0) + 1
            for m in modes:
                task = USER_COT if m == "cot" else USER_DIRECT
                instances.append(Instance(id=f"line={r['_line']}/mode={m}", doc=r, reference=r["answer"],
                                          params={"steps": s, "mode": m, "line": r["_line"]}, task=task.name))
        if not instances:
            raise TaskError(f"{config.data}: no problem has a number of steps in {sorted(wanted)}; "
                            "change --steps or check the file's solutions.")
        plan = Plan({USER_COT.name: USER_COT, USER_DIRECT.name: USER_DIRECT}, instances)
    plan.warnings = list(loaded.errors)
    return plan
