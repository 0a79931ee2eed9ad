"""The training corpus: an endless seeded stream of documents mixing every task format.

Mixture (share of documents): core-world articles and biographies (the facts closed-book QA asks about),
"Tell me about" articles, open-book QA, closed-book QA lines (half of the core entities only), few-shot
episodes with k = 0..8, arithmetic with chain of thought or direct answers (1..5 steps), pass-key documents
(up to ~900 tokens), associative recall and copying. All entities come from the train split.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from . import tasks as T
from .text import article, qa_lines
from .world import closed_book_entities, core_world

MIXTURE: dict[str, float] = {  # shares of documents; pass-key documents are long, so ~10% of tokens
    "core_article": 0.18, "core_bio": 0.05, "tell": 0.05, "qa_open": 0.16, "qa_closed": 0.06,
    "fewshot": 0.18, "cot": 0.16, "direct": 0.06, "passkey": 0.02, "recall": 0.06, "copy": 0.04,
}
SPLIT = "train"
# What training shows of each evaluated skill (the draws below use these ranges, so the experiments' "in / out of
# distribution" panels cannot drift from the corpus): few-shot examples per episode, arithmetic steps, pass-key
# document tokens (about four characters a token), associative-recall pairs, copied words, passages before a
# question (open-book QA: one article, right before its question).
TRAINED: dict[str, tuple[int, int]] = {
    "fewshot_k": (0, 8), "arithmetic_steps": (1, 5), "passkey_tokens": (150, 900), "recall_pairs": (2, 24),
    "copy_words": (3, 30), "qa_passages": (1, 1),
}


def _qa(context: str | None, q: str, a: str) -> str:
    key = "qa_closed" if context is None else "qa_open"
    return T.TEMPLATES[key].format(context=context, question=q) + f" {a}{T.ANSWER_END}"


def _doc(kind: str, rng: random.Random) -> str:
    core = core_world()
    if kind == "core_article":
        return article(rng.choice(core.entities()), rng)
    if kind == "core_bio":
        return T.biography(rng.choice(core.people), rng)
    if kind == "tell":
        e = rng.choice(core.entities()) if rng.random() < 0.5 else rng.choice(T._fresh_world(SPLIT, rng).entities())
        return T.TEMPLATES["tell"].format(name=e.name) + article(e, rng)
    if kind == "qa_open":
        rows = T.qa(rng.randint(1, 3), rng, SPLIT, open_book=True)
        return "\n".join(_qa(r["context"], r["question"], r["answer"]) for r in rows)
    if kind == "qa_closed":
        e = rng.choice(closed_book_entities(held_out=False))
        return "".join(_qa(None, q, a) for q, a in qa_lines(e, rng, k=rng.randint(1, 3)))
    if kind == "fewshot":
        task = rng.choice(sorted(T.FEWSHOT_TASKS))
        k = rng.randint(*TRAINED["fewshot_k"])
        ex = T.fewshot_examples(task, k + 1, rng, SPLIT)
        return T.fewshot_prompt(ex[:k], ex[k]) + f" {ex[k]['label']}\n"
    if kind in ("cot", "direct"):
        p = T.arithmetic(1, rng.randint(*TRAINED["arithmetic_steps"]), rng, SPLIT)[0]
        if kind == "cot":
            return T.TEMPLATES["cot"].format(question=p["question"]) + p["solution"] + "\n"
        return T.TEMPLATES["direct"].format(question=p["question"]) + f" {p['answer']}.\n"
    if kind == "passkey":
        r = T.passkey(1, rng.randint(*TRAINED["passkey_tokens"]), rng.random(), rng, SPLIT)[0]
        return T.TEMPLATES["passkey"].format(**r) + f" {r['answer']}{T.ANSWER_END}"
    if kind == "recall":
        r = T.recall(1, rng.randint(*TRAINED["recall_pairs"]), rng, SPLIT)[0]
        return T.TEMPLATES["recall"].format(**r) + f" {r['answer']}{T.ANSWER_END}"
    if kind == "copy":
        words = [rng.choice(T._ANIMALS + T._TOOLS + T.COLOURS) for _ in range(rng.randint(*TRAINED["copy_words"]))]
        seq = " ".join(words)
        return T.TEMPLATES["copy"].format(text=seq) + f"{seq}\n"
    raise ValueError(f"unknown document kind {kind!r}")


def documents(seed: int = 0) -> Iterator[str]:
    """Endless stream of training documents for a seed (deterministic)."""
    rng = random.Random(f"{SPLIT}:corpus:{seed}")
    kinds, weights = zip(*MIXTURE.items(), strict=True)
    while True:
        yield _doc(rng.choices(kinds, weights)[0], rng)


def training_corpus(n_tokens_approx: int, seed: int = 0) -> Iterator[str]:
    """Documents until about `n_tokens_approx` tokens (four characters count as one token)."""
    total = 0
    for doc in documents(seed):
        if total >= n_tokens_approx:
            return
        total += len(doc) // 4 + 1
        yield doc
