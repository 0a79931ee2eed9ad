"""Prompts in the formats the bundled toy models were trained on (backend.toyworld.TEMPLATES), with the
reference answer where the toy world has one, and right / wrong marking of a continuation.

The bundled models only know their fictional world and these formats: "Tell me about the river" is not one
of them and gives noise. Every example here is built from the toy world's own generators, so its reference
is the world's fact (closed-book questions ask about the training world; open-book questions, few-shot
queries, sums and pass keys come from the held-out split, as in the evaluation). Marking uses the
experiments' extraction rules and exact match (backend.experiments.metrics), not a new rule.

    examples() -> [Example]            the start page's "try it" list and the Arena's example box
    find(prompt) -> Example | None     the example a prompt came from (unchanged), for its reference
    mark(output, reference, rule) -> Mark(extracted, correct)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from backend.toyworld import (
    TEMPLATES,
    arithmetic_problems,
    core_world,
    fewshot_pool,
    fewshot_prompt,
    passkey_documents,
    qa_pairs,
)


@dataclass(frozen=True)
class Example:
    key: str  # the TEMPLATES entry it fills
    title: str
    prompt: str
    reference: str | None  # None: no single right answer (an article)
    rule: str = "first_line"  # extraction rule (backend.experiments.metrics) for the reference
    stop_at_line: bool = False  # question answering: the answer is one line
    max_new_tokens: int = 64
    note: str = ""  # what it shows, in one sentence


@dataclass(frozen=True)
class Mark:
    extracted: str
    correct: bool
    rule: str


@functools.lru_cache(maxsize=1)
def examples() -> tuple[Example, ...]:
    w = core_world()
    closed = qa_pairs(1, seed=0, open_book=False)[0]
    opened = qa_pairs(1, seed=0, open_book=True)[0]
    shots = fewshot_pool("sentiment", 5, seed=0)
    sums = arithmetic_problems(2, steps=2, seed=0)
    key = passkey_documents(1, 512, 0.5, seed=0)[0]
    return (
        Example("tell", "Article about a training-world person", TEMPLATES["tell"].format(name=w.people[0].name),
                None, max_new_tokens=96,
                note="An encyclopedia-style article about someone from the world the models were trained on."),
        Example("qa_closed", "Closed-book question", TEMPLATES["qa_closed"].format(question=closed["question"]),
                closed["answer"], stop_at_line=True, max_new_tokens=16,
                note="A fact about the training world that appeared in training only as prose."),
        Example("qa_open", "Open-book question (held-out passage)",
                TEMPLATES["qa_open"].format(context=opened["context"], question=opened["question"]),
                opened["answer"], stop_at_line=True, max_new_tokens=16,
                note="The answer is in the passage; the entity never appeared in training."),
        Example("fewshot_query", "Few-shot labelling (sentiment)", fewshot_prompt(shots[:4], shots[4]), shots[4]["label"],
                stop_at_line=True, max_new_tokens=8,
                note="Four labelled examples, then a new remark to label (positive or negative)."),
        Example("cot", "Arithmetic, step by step", TEMPLATES["cot"].format(question=sums[0]["question"]),
                str(sums[0]["answer"]), rule="answer_is", max_new_tokens=80,
                note="A two-step word problem; the model writes the steps and then 'The answer is N.'"),
        Example("direct", "Arithmetic, answer directly", TEMPLATES["direct"].format(question=sums[1]["question"]),
                str(sums[1]["answer"]), rule="leading_number", stop_at_line=True, max_new_tokens=8,
                note="The same kind of problem without the steps (harder for these models)."),
        Example("passkey", "Pass key in a 512-token document",
                TEMPLATES["passkey"].format(context=key["context"], question=key["question"]), key["answer"],
                stop_at_line=True, max_new_tokens=12,
                note="A number hidden in the middle of a long held-out document; recall it at the end."),
    )


def find(prompt: str) -> Example | None:
    """The example whose prompt is exactly `prompt` (an edited prompt has no reference any more)."""
    return next((e for e in examples() if e.prompt == prompt), None)


def mark(output: str, reference: str, rule: str = "first_line") -> Mark:
    """Extract the answer from a continuation by `rule` and compare it with the reference (exact match after
    the experiments' normalisation). Single-line rules look at the first line only."""
    # imported here: backend.experiments.metrics loads statsmodels (seconds), which the start page must not wait for
    from backend.experiments.metrics import exact_match, extract, truncate_at_stop

    text = truncate_at_stop(output, ["\n"]) if rule in ("first_line", "leading_number") else output
    got = extract(rule, text)
    return Mark(got, bool(exact_match(got, reference)) if got else False, rule)
