"""Built-in tasks from the toy world's held-out (evaluation split) generators.

Prompts use `backend.toyworld.TEMPLATES`, the formats the bundled models were trained on:
  few-shot   "Input: {text}\\nLabel: {label}\\n" per example, then "Input: {text}\\nLabel:"; scored over
             the task's label words by log-likelihood (accuracy over choices)
  passkey    "{context}\\nQuestion: {question}\\nAnswer:" + " {answer}\\n"; exact match of the first
             line (strict) or the first number (flexible)
  cot        "Question: {question}\\nLet's think step by step.\\n" + a chain ending "The answer is N.";
             strict "The answer is N", flexible the last number (lm-eval gsm8k_cot)
  direct     "Question: {question}\\nThe answer is" + " N."; strict: the output starts with the
             number, flexible: the first number
  toy-rag    backend.experiments.rag.rag_plan: toy-world documents the models never saw, indexed in a throw-away
             collection; "{context}\nQuestion: {question}\nAnswer:" with the top-k passages (k = 0: the
             closed-book "Question: {question}\nAnswer:"); exact match of the first line
"""

from __future__ import annotations

from collections.abc import Callable

from backend.experiments.config import ExperimentConfig
from backend.experiments.registry import Plan, fewshot_plan, register_task
from backend.experiments.tasks import Instance, TaskSpec, stable_seed
from backend.toyworld import FEWSHOT_TASKS, TEMPLATES, arithmetic_problems, fewshot_pool, passkey_documents

_query = TEMPLATES["fewshot_query"]
_example = TEMPLATES["fewshot_example"]
if not _example.startswith(_query):
    raise ImportError("toyworld few-shot templates changed shape; update backend.experiments.toytasks")
FEWSHOT_TARGET = _example[len(_query):]  # " {label}\n"

POOL_SIZE = 400


def fewshot_task(name: str) -> TaskSpec:
    return TaskSpec(name=f"fewshot-{name}", template=_query, target=FEWSHOT_TARGET, fewshot_delimiter="",
                    output_type="choices", choices_field="choices", reference_field="label",
                    extract={"acc": "full"}, primary="acc")


PASSKEY = TaskSpec(name="passkey", template=TEMPLATES["passkey"], target=" {answer}\n",
                   extract={"strict": "first_line", "flexible": "first_number"}, primary="strict",
                   stop=["\n"], max_new_tokens=12, store_prompt_chars=3000)
COT = TaskSpec(name="arithmetic-cot", template=TEMPLATES["cot"], target="{solution}\n",
               extract={"strict": "answer_is", "flexible": "last_number"}, primary="strict",
               stop=["\n\n", "Question:"], max_new_tokens=112)
DIRECT = TaskSpec(name="arithmetic-direct", template=TEMPLATES["direct"], target=" {answer}.\n",
                  extract={"strict": "leading_number", "flexible": "first_number"}, primary="strict",
                  stop=["\n"], max_new_tokens=8)


def _fewshot_builder(name: str) -> Callable[..., Plan]:
    labels = [str(x) for x in FEWSHOT_TASKS[name]["labels"]]

    def build(config: ExperimentConfig, count_tokens=None) -> Plan:
        task = fewshot_task(name)
        need = config.n + max(config.sweep.get("k", [0])) + 1
        pool = fewshot_pool(name, max(POOL_SIZE, need), seed=config.seed)
        pool = [{**ex, "label": str(ex["label"]), "choices": labels} for ex in pool]
        return fewshot_plan(config, task, pool)

    return build


def passkey_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    instances = []
    for length in config.sweep.get("length", [1024]):
        for depth in config.sweep.get("depth", [0.5]):
            budget = max(16, length - 8)  # the question and answer fit inside the target length
            seed = stable_seed(config.seed, "passkey", length, depth)
            docs = passkey_documents(config.n, budget, float(depth), seed=seed, count_tokens=count_tokens)
            for i, d in enumerate(docs):
                instances.append(Instance(id=f"length={length}/depth={depth}/q={i}", doc=d, reference=d["answer"],
                                          params={"length": length, "depth": float(depth), "query": i},
                                          task=PASSKEY.name))
    return Plan({PASSKEY.name: PASSKEY}, instances)


def arithmetic_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    instances = []
    modes = config.sweep.get("mode", ["direct", "cot"])
    for steps in config.sweep.get("steps", [1, 2, 3]):
        problems = arithmetic_problems(config.n, steps, seed=config.seed)
        for i, p in enumerate(problems):
            doc = {**p, "answer": str(p["answer"])}
            for mode in modes:
                task = COT if mode == "cot" else DIRECT
                instances.append(Instance(id=f"steps={steps}/mode={mode}/q={i}", doc=doc, reference=doc["answer"],
                                          params={"steps": steps, "mode": mode, "query": i}, task=task.name))
    return Plan({COT.name: COT, DIRECT.name: DIRECT}, instances)


for _name in FEWSHOT_TASKS:
    register_task("fewshot", _name, _fewshot_builder(_name))
register_task("long-context", "passkey", passkey_plan)
register_task("cot", "arithmetic", arithmetic_plan)
