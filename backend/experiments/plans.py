"""Turn an ExperimentConfig into a Plan: the tasks and the exact instances every model will see.

Instances are built from the config's seed alone (stable_seed; never Python's salted hash), so the same
config gives the same prompts in any process, and a resumed run recognises its finished instances by id.

Sources: the tasks registered in `backend.experiments.registry` (the toy world's in
`backend.experiments.toytasks` and the RAG experiment's in `backend.experiments.rag`, both imported here so
that they register; tests register tiny ones with `register_task`) and user JSONL files (`config.data`).
"""

from __future__ import annotations

from collections.abc import Callable

from backend.experiments import toytasks  # noqa: F401  (registers the toy-world tasks)
from backend.experiments.config import DATA_SCHEMA, DEFAULT_TASK, ExperimentConfig
from backend.experiments.datasets import load_jsonl
from backend.experiments.rag import rag_file_plan
from backend.experiments.registry import Plan, builder_of, fewshot_plan, task_names
from backend.experiments.tasks import FewShotSpec, Instance, TaskError, TaskSpec


def build_plan(config: ExperimentConfig, count_tokens: Callable[[str], int] | None = None) -> Plan:
    """`count_tokens` (the first model's tokenizer) lets length-targeted tasks hit token counts exactly."""
    if config.data:
        return _data_plan(config)
    names = task_names(config.experiment)
    name = config.task or (DEFAULT_TASK[config.experiment] if DEFAULT_TASK[config.experiment] in names else
                           (names[0] if names else ""))
    builder = builder_of(config.experiment, name)
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


def _data_plan(config: ExperimentConfig) -> Plan:
    if config.experiment == "rag":
        return rag_file_plan(config)
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
