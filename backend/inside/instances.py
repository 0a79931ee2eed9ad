"""Experiment instances for the inside view, with what to highlight as character ranges of the prompt.

The instances are the experiments' own (`backend.experiments.plans.build_plan`, the same seed-stable plans the
runner uses), so "the pass-key instance at length 512, depth 0.5, seed 0, query 0" is the prompt every model
saw in that run. Highlights:
    pass key       every occurrence of the planted key (the instance's answer) in the prompt
    gold passage   the passage(s) of the context that come from the gold document (a RAG instance's doc lists
                   its passages' document ids in order, `context_doc_ids` or, in older plans, `retrieved_doc_ids`,
                   next to `gold_doc_id`)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.experiments.config import ExperimentConfig
from backend.experiments.plans import build_plan
from backend.experiments.tasks import TaskError, render_prompt
from backend.rag import CONTEXT_SEPARATOR


@dataclass
class InstanceText:
    id: str
    prompt: str
    reference: str
    char_spans: list[tuple[str, int, int]] = field(default_factory=list)  # (label, start, end) in prompt
    note: str = ""


def passkey_config(length: int, depth: float, seed: int = 0, query: int = 0, models=("inspect",)) -> ExperimentConfig:
    """The long-context experiment's pass-key task at one (length, depth) point."""
    return ExperimentConfig("long-context", list(models), n=query + 1, seed=seed, task="passkey",
                            sweep={"length": [int(length)], "depth": [float(depth)]})


def rag_config(k: int, seed: int = 0, query: int = 0, models=("inspect",)) -> ExperimentConfig:
    """The RAG experiment (toy-world documents, retrieval included) at k passages."""
    return ExperimentConfig("rag", list(models), n=query + 1, seed=seed, task="toy-rag", sweep={"k": [int(k)]})


def highlights(doc: dict, prompt: str) -> tuple[list[tuple[str, int, int]], str]:
    """(char spans, note) of the planted key / gold passage in `prompt`; other instances get none."""
    spans: list[tuple[str, int, int]] = []
    if "gold_doc_id" in doc and "context" in doc:
        passages = str(doc["context"]).split(CONTEXT_SEPARATOR) if doc["context"] else []
        ids = list(doc.get("context_doc_ids") or doc.get("retrieved_doc_ids") or [])
        start = prompt.find(str(doc["context"])) if passages else -1
        if start < 0 or len(ids) != len(passages):
            return [], "The gold passage cannot be located in this prompt (closed-book, or passages not aligned)."
        for pid, text in zip(ids, passages, strict=True):
            if pid == doc["gold_doc_id"]:
                spans.append(("gold passage", start, start + len(text)))
            start += len(text) + len(CONTEXT_SEPARATOR)
        return spans, "" if spans else "The gold document was not retrieved for this question: nothing to highlight."
    key = str(doc.get("answer", "")) if "context" in doc else ""
    if key:
        context_end = prompt.find(str(doc["context"])) + len(str(doc["context"]))
        at = prompt.find(key)
        while 0 <= at < context_end:
            spans.append(("pass key", at, at + len(key)))
            at = prompt.find(key, at + len(key))
    return spans, "" if spans or not key else "The key does not occur in the prompt's context."


def from_plan(config: ExperimentConfig, instance_id: str | None = None, query: int = 0,
              count_tokens=None) -> InstanceText:
    """Instance `instance_id` of config's plan (or the first with params query == `query`), rendered."""
    plan = build_plan(config, count_tokens=count_tokens)
    if instance_id is not None:
        found = [i for i in plan.instances if i.id == instance_id]
    else:
        found = [i for i in plan.instances if i.params.get("query", 0) == query]
    if not found:
        raise TaskError(f"The plan of this {config.experiment} run has no instance "
                        f"{instance_id or f'with query {query}'}; pick another one.")
    inst = found[0]
    prompt = render_prompt(plan.tasks[inst.task], inst)
    spans, note = highlights(inst.doc, prompt)
    return InstanceText(inst.id, prompt, str(inst.reference), spans, note)
