"""Built-in tasks from the toy world's held-out (evaluation split) generators, each a versioned TaskSpec.

Prompts use `backend.toyworld.TEMPLATES`, the formats the bundled models were trained on. Versions (recorded with
every stored row as params.task_version; issue 13 made the current ones):
  few-shot   "Input: {text}\\nLabel: {label}\\n" per example, then "Input: {text}\\nLabel:"; the label with the highest
             log-likelihood among the instance's choices (accuracy over choices)
             arbitrary v2   animals vs tools; two trained single-token nonce labels mapped at random per instance
                            (v1: one mapping for the whole pool over two untrained two-token labels)
             new-labels v1  the same with single-token words never used as labels in training
             flipped v1     sentiment with positive/negative swapped in the examples and the reference
             sentiment, workplace v1   mappings fixed in training: k = 0 already knows them (a ceiling)
  passkey v2 "{context}\\nQuestion: {question}\\nAnswer:"; the trained needle plus keys-1 distractor needles;
             each row records the needle's distance to the question (v1: one needle, no distance)
  recall v1  " key: value" lines (keys tokenised alike in the list and the question), exact match of the first line
  copy v1    "Repeat after me: {text}\\n" + the text; exact match of the first line (strict) and the share of words
             in place (words)
  cot v2     "Question: {question}\\nLet's think step by step.\\n" + a chain ending "The answer is N."; strict
             "The answer is N", flexible the last number (lm-eval gsm8k_cot); room for 10-step chains
  direct v2  "Question: {question}\\nThe answer is" + " N."; strict: the output starts with the number, flexible:
             the first number, within1: the leading number at most 1 from the answer (a near miss)
  toy-rag    backend.experiments.rag (v2: the gold passage among k, at a position uniform over them)
"""

from __future__ import annotations

from collections.abc import Callable

from backend.experiments.config import ExperimentConfig
from backend.experiments.registry import Plan, fewshot_plan, register_task
from backend.experiments.tasks import Instance, TaskSpec, stable_seed
from backend.toyworld import (
    FEWSHOT_PROBES,
    FEWSHOT_TASKS,
    TEMPLATES,
    arithmetic_problems,
    copy_sequences,
    fewshot_episodes,
    fewshot_pool,
    passkey_probe,
    recall_aligned,
)

_query = TEMPLATES["fewshot_query"]
_example = TEMPLATES["fewshot_example"]
if not _example.startswith(_query):
    raise ImportError("toyworld few-shot templates changed shape; update backend.experiments.toytasks")
FEWSHOT_TARGET = _example[len(_query):]  # " {label}\n"

POOL_SIZE = 400
FEWSHOT_VERSIONS = {"arbitrary": 2, "new-labels": 1, "flipped": 1, "sentiment": 1, "workplace": 1}


def fewshot_task(name: str) -> TaskSpec:
    return TaskSpec(name=f"fewshot-{name}", template=_query, target=FEWSHOT_TARGET, fewshot_delimiter="",
                    output_type="choices", choices_field="choices", reference_field="label",
                    extract={"acc": "full"}, primary="acc", version=FEWSHOT_VERSIONS.get(name, 1))


PASSKEY = TaskSpec(name="passkey", template=TEMPLATES["passkey"], target=" {answer}\n", version=2,
                   extract={"strict": "first_line", "flexible": "first_number"}, primary="strict",
                   stop=["\n"], max_new_tokens=12, store_prompt_chars=3000)
RECALL = TaskSpec(name="recall", template=TEMPLATES["recall"], target=" {answer}\n", version=1,
                  extract={"strict": "first_line", "flexible": "first_number"}, primary="strict",
                  stop=["\n"], max_new_tokens=8)
COT = TaskSpec(name="arithmetic-cot", template=TEMPLATES["cot"], target="{solution}\n", version=2,
               extract={"strict": "answer_is", "flexible": "last_number"}, primary="strict",
               stop=["\n\n", "Question:"], max_new_tokens=176)
DIRECT = TaskSpec(name="arithmetic-direct", template=TEMPLATES["direct"], target=" {answer}.\n", version=2,
                  extract={"strict": "leading_number", "flexible": "first_number", "within1": "leading_number"},
                  filter_metrics={"within1": "within_one"}, primary="strict", stop=["\n"], max_new_tokens=8)


def copy_task(max_words: int) -> TaskSpec:
    """The copy task; room for `max_words` words (about one token each) and the newline after them."""
    return TaskSpec(name="copy", template=TEMPLATES["copy"], target="{answer}\n", version=1,
                    extract={"strict": "first_line", "words": "first_line"}, filter_metrics={"words": "word_accuracy"},
                    primary="strict", stop=["\n"], max_new_tokens=max_words + 16)


def _fewshot_builder(name: str) -> Callable[..., Plan]:
    """sentiment / workplace (v1): the generic nested plan over one pool whose mapping training fixed."""
    labels = [str(x) for x in FEWSHOT_TASKS[name]["labels"]]

    def build(config: ExperimentConfig, count_tokens=None) -> Plan:
        task = fewshot_task(name)
        need = config.n + max(config.sweep.get("k", [0])) + 1
        pool = fewshot_pool(name, max(POOL_SIZE, need), seed=config.seed)
        pool = [{**ex, "label": str(ex["label"]), "choices": labels} for ex in pool]
        return fewshot_plan(config, task, pool)

    return build


def _episode_builder(name: str) -> Callable[..., Plan]:
    """arbitrary / new-labels / flipped: one episode per query with its own label mapping; the query is asked at
    every k with the first k of its examples (nested), so k is the only thing that changes along a curve."""

    def build(config: ExperimentConfig, count_tokens=None) -> Plan:
        task = fewshot_task(name)
        ks = config.sweep.get("k", [0])
        episodes = fewshot_episodes(name, config.n, max(ks), seed=stable_seed(config.seed, "fewshot", name))
        instances = []
        for qi, ep in enumerate(episodes):
            doc = {**ep["query"], "choices": ep["choices"]}
            for k in ks:
                instances.append(Instance(id=f"k={k}/q={qi}", doc=doc, reference=doc["label"],
                                          params={"k": k, "query": qi}, examples=ep["examples"][:k], task=task.name))
        return Plan({task.name: task}, instances)

    return build


def passkey_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    instances = []
    for length in config.sweep.get("length", [1024]):
        for depth in config.sweep.get("depth", [0.5]):
            for keys in config.sweep.get("keys", [1]):
                budget = max(16, length - 8)  # the question and answer fit inside the target length
                seed = stable_seed(config.seed, "passkey", length, depth, keys)
                docs = passkey_probe(config.n, budget, float(depth), int(keys), seed=seed, count_tokens=count_tokens)
                for i, d in enumerate(docs):
                    params = {"length": length, "depth": float(depth), "keys": int(keys), "query": i,
                              "distance": d["distance"], "distractors": ",".join(d["distractors"])}
                    instances.append(Instance(id=f"length={length}/depth={depth}/keys={keys}/q={i}", doc=d,
                                              reference=d["answer"], params=params, task=PASSKEY.name))
    return Plan({PASSKEY.name: PASSKEY}, instances)


def recall_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    instances = []
    for pairs in config.sweep.get("pairs", [8]):
        rows = recall_aligned(config.n, int(pairs), seed=stable_seed(config.seed, "recall", pairs))
        for i, r in enumerate(rows):
            params = {"pairs": int(pairs), "query": i, "position": r["position"], "listed": ",".join(r["values"])}
            instances.append(Instance(id=f"pairs={pairs}/q={i}", doc=r, reference=r["answer"], params=params,
                                      task=RECALL.name))
    return Plan({RECALL.name: RECALL}, instances)


def copy_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    words = [int(w) for w in config.sweep.get("words", [10])]
    task = copy_task(max(words))
    instances = []
    for w in words:
        for i, r in enumerate(copy_sequences(config.n, w, seed=stable_seed(config.seed, "copy", w))):
            instances.append(Instance(id=f"words={w}/q={i}", doc=r, reference=r["answer"],
                                      params={"words": w, "query": i}, task=task.name))
    return Plan({task.name: task}, instances)


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


for _name in FEWSHOT_PROBES:
    register_task("fewshot", _name, _episode_builder(_name))
for _name in ("sentiment", "workplace"):
    register_task("fewshot", _name, _fewshot_builder(_name))
register_task("long-context", "passkey", passkey_plan)
register_task("long-context", "recall", recall_plan)
register_task("long-context", "copy", copy_plan)
register_task("cot", "arithmetic", arithmetic_plan)
