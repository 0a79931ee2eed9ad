"""Held-out probes that measure what they claim (issue 13): the evaluation generators behind the experiments'
current task versions. The training corpus never calls this module, so nothing here changes what the bundled
models were trained on; every probe takes `split` so a later training mixture can draw the same formats from the
train split.

    fewshot_episodes(task, n, kmax, rng, split)  one label mapping per episode (query + kmax examples)
        "arbitrary"   animals vs tools, two of the trained single-token nonce labels, assigned at random per episode
        "new-labels"  the same, with single-token words that never occur as a label in training
        "flipped"     sentiment with the trained labels swapped (examples and reference): only the examples can
                      overturn what training taught
      Query categories are balanced (half animals / positive); example categories are drawn at random.
    passkey_probe(n, tokens, depth, keys, rng, split, count)  the trained pass-key document, plus `keys - 1`
        distractor needles of the same shape ("The door code is N. ...") at other depths; records the target
        needle's distance (tokens from the needle to the question)
    recall_aligned(n, n_pairs, rng, split)  associative recall whose keys tokenise alike in the list and the
        question (each list line starts with a space, as the key does after "of" in the question)
    copy_sequences(n, n_words, rng)  "Repeat after me: ..." sequences of trained words (training: 3..30 words)
"""

from __future__ import annotations

import random

from .tasks import (
    _ANIMALS,
    _BAD,
    _GOOD,
    _NONCE,
    _SUBJECTS,
    _TOOLS,
    COLOURS,
    _approx_tokens,
    _fresh_world,
    nonce_keys,
)
from .text import article

# Single-token words (with their leading space, in the bundled tokenizer) that the training corpus never uses as
# a few-shot label; tests/backend/toyworld checks both.
NEW_LABELS = ["north", "south", "summer", "paper", "glass", "rope", "music", "valley"]
TRAINED_LABELS = list(_NONCE["train"])  # the nonce labels of training's arbitrary episodes (single tokens)
COPY_WORDS = _ANIMALS + _TOOLS + COLOURS  # the words of training's copy documents
DISTRACTOR_NOUNS = ["door code", "room number", "ticket number", "locker code"]
FEWSHOT_PROBES = ("arbitrary", "new-labels", "flipped")


def _balanced(n: int, rng: random.Random) -> list[bool]:
    """n booleans, half True (one more when n is odd, chosen at random), in random order."""
    flags = [i < n // 2 for i in range(n)]
    if n % 2:
        flags[-1] = rng.random() < 0.5
    rng.shuffle(flags)
    return flags


def _item(task: str, positive: bool, rng: random.Random, world) -> str:
    if task == "flipped":
        place = rng.choice(world.places).name
        return f"In {place}, {rng.choice(_SUBJECTS)} was {rng.choice(_GOOD if positive else _BAD)}."
    return f"a {rng.choice(COLOURS)} {rng.choice(_ANIMALS if positive else _TOOLS)}"


def fewshot_episodes(task: str, n: int, kmax: int, rng: random.Random, split: str = "eval") -> list[dict]:
    """n episodes {"query": {text, label, category}, "examples": [kmax of them], "choices": [2 labels],
    "mapping": {category: label}}. The label of category A is drawn per episode, so no label is right more
    often than another across episodes and a model cannot score above chance without reading the examples."""
    if task not in FEWSHOT_PROBES:
        raise ValueError(f"unknown few-shot probe {task!r}; choose one of {', '.join(FEWSHOT_PROBES)}")
    world = _fresh_world(split, rng)
    out = []
    for first in _balanced(n, rng):
        if task == "flipped":
            names, mapping = ("positive", "negative"), {"positive": "negative", "negative": "positive"}
        else:
            a, b = rng.sample(TRAINED_LABELS if task == "arbitrary" else NEW_LABELS, 2)
            names, mapping = ("animal", "tool"), {"animal": a, "tool": b}

        def make(positive: bool, names=names, mapping=mapping) -> dict:
            category = names[0] if positive else names[1]
            return {"text": _item(task, positive, rng, world), "label": mapping[category], "category": category}

        query = make(first)
        examples = [make(rng.random() < 0.5) for _ in range(kmax)]
        out.append({"query": query, "examples": examples, "choices": sorted(set(mapping.values())),
                    "mapping": mapping})
    return out


def _needle(noun: str, key: str) -> str:
    return f"The {noun} is {key}. Remember it. {key} is the {noun}."


def passkey_probe(n: int, context_tokens: int, depth: float, keys: int, rng: random.Random, split: str = "eval",
                  count_tokens=None) -> list[dict]:
    """Pass-key documents in the trained format (entity articles, one "The pass key is N." needle at `depth`),
    with `keys - 1` distractor needles of the same shape but another noun at random other depths. Each row:
    context, question, answer, depth, keys, length (tokens), distance (tokens from the end of the target needle
    to the end of the context, i.e. how far back the answer lies), distractors (their numbers)."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be between 0 and 1, got {depth}")
    if keys < 1:
        raise ValueError(f"keys must be at least 1, got {keys}")
    count = count_tokens or _approx_tokens
    out = []
    for _ in range(n):
        numbers: list[str] = []
        while len(numbers) < keys:
            k = str(rng.randint(10000, 99999))
            if k not in numbers:
                numbers.append(k)
        needle = _needle("pass key", numbers[0])
        others = [_needle(rng.choice(DISTRACTOR_NOUNS), k) for k in numbers[1:]]
        budget = context_tokens - sum(count(" " + x) for x in [needle, *others]) - 16  # room for the question
        parts: list[str] = []
        used = misses = 0
        while misses < 32:  # articles until 32 in a row no longer fit: close to the target, never over it
            for e in _fresh_world(split, rng).entities():
                p = article(e, rng)
                c = count(" " + p)
                if used + c > budget:
                    misses += 1
                    if misses >= 32:
                        break
                    continue
                misses = 0
                parts.append(p)
                used += c
        pos = round(depth * len(parts))
        for other in others:  # distractors anywhere, never in the target's own slot
            slots = [i for i in range(len(parts) + 1) if i != pos] or [pos]
            i = rng.choice(slots)
            parts.insert(i, other)
            pos += i <= pos
        parts.insert(pos, needle)
        context = " ".join(parts)
        after = " ".join(parts[pos + 1:])
        out.append({"context": context, "question": "What is the pass key?", "answer": numbers[0], "depth": depth,
                    "keys": keys, "length": count(context), "distance": count(after) if after else 0,
                    "distractors": numbers[1:]})
    return out


def recall_aligned(n: int, n_pairs: int, rng: random.Random, split: str = "eval") -> list[dict]:
    """Associative recall: `n_pairs` lines " key: value", then a question for one key. Each line starts with a
    space, so a key is the same tokens in the list as after "of " in the question (without it, a byte-level BPE
    codes the list's key at the start of a line differently). Values are three-digit numbers, all different."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    out = []
    for _ in range(n):
        keys = nonce_keys(n_pairs, rng)
        vals = [str(v) for v in rng.sample(range(100, 1000), n_pairs)]
        i = rng.randrange(n_pairs)
        ctx = "\n".join(f" {k}: {v}" for k, v in zip(keys, vals, strict=True))
        out.append({"context": ctx, "question": f"What is the value of {keys[i]}?", "answer": vals[i],
                    "key": keys[i], "position": i, "pairs": n_pairs, "values": vals})
    return out


def copy_sequences(n: int, n_words: int, rng: random.Random) -> list[dict]:
    """Sequences of `n_words` words drawn as training's copy documents draw them; "text" is the sequence, the
    answer is the sequence itself."""
    if n_words < 1:
        raise ValueError(f"n_words must be at least 1, got {n_words}")
    out = []
    for _ in range(n):
        seq = " ".join(rng.choice(COPY_WORDS) for _ in range(n_words))
        out.append({"text": seq, "answer": seq, "words": n_words})
    return out
