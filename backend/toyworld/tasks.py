"""Task generators shared by the training corpus (split="train") and the evaluation split ("eval").

Every public generator in `backend.toyworld` is the split="eval" form of a function here; the corpus calls
the same functions with split="train", so the formats the models learn are exactly the ones evaluated.
"""

from __future__ import annotations

import random

from .text import a_, article, facts, title
from .world import COLOURS, OCCUPATIONS, closed_book_entities, core_world, make_world

# The prompt formats the bundled models were trained on. A task's prompt is the template filled in; the
# expected continuation follows it (answers start with a space and QA answers end with a newline).
TEMPLATES: dict[str, str] = {
    "qa_open": "{context}\nQuestion: {question}\nAnswer:",  # + " {answer}\n"
    "qa_closed": "Question: {question}\nAnswer:",  # + " {answer}\n"
    "rag": "{context}\nQuestion: {question}\nAnswer:",  # retrieved passages as the context
    "passkey": "{context}\nQuestion: {question}\nAnswer:",  # + " {answer}\n"
    "recall": "{context}\nQuestion: {question}\nAnswer:",  # + " {answer}\n"
    "fewshot_example": "Input: {text}\nLabel: {label}\n",
    "fewshot_query": "Input: {text}\nLabel:",  # + " {label}\n"
    "cot": "Question: {question}\nLet's think step by step.\n",  # + solution ending "The answer is N."
    "direct": "Question: {question}\nThe answer is",  # + " N."
    "tell": "Tell me about {name}.\n",  # + an encyclopedia article
    "copy": "Repeat after me: {text}\n",  # + the same text and a newline
}
ANSWER_END = "\n"  # QA-style answers end here; "answer up to the first newline" is the extraction rule

_ANIMALS = ["cat", "horse", "owl", "fox", "goat", "heron", "otter", "mouse", "whale", "crow", "badger", "frog"]
_TOOLS = ["hammer", "saw", "needle", "ladder", "spade", "chisel", "anvil", "lantern", "rake", "shovel", "axe",
          "kettle"]
_GOOD = ["delicious", "wonderful", "lovely", "excellent", "delightful", "splendid", "perfect", "cheerful"]
_BAD = ["awful", "terrible", "dreadful", "horrible", "miserable", "rotten", "disgusting", "dull"]
_SUBJECTS = ["the soup", "the music", "the weather", "the show", "the bread", "the journey", "the room",
             "the market"]
WORKPLACE = {"baker": "bakery", "carpenter": "workshop", "sailor": "ship", "teacher": "school",
             "doctor": "hospital", "painter": "studio", "farmer": "farm", "merchant": "shop", "poet": "study",
             "engineer": "factory", "astronomer": "observatory", "weaver": "mill", "blacksmith": "forge",
             "librarian": "library", "musician": "theatre", "gardener": "garden"}
_NONCE = {"eval": ["dax", "wug"], "train": ["blick", "fep", "toma", "zup", "kiki", "bouba", "lorp", "mip"]}

FEWSHOT_TASKS: dict[str, dict] = {
    "sentiment": {"labels": ["positive", "negative"],
                  "description": "a visitor's remark about a town is positive or negative (label words)"},
    "workplace": {"labels": sorted(set(WORKPLACE.values())),
                  "description": "a person's occupation maps to the place they work (attribute mapping)"},
    "arbitrary": {"labels": list(_NONCE["eval"]),
                  "description": "animals vs tools named by nonce labels whose meaning is random per pool "
                                 "seed and defined only by the examples"},
}


def _rng(split: str, kind: str, seed) -> random.Random:
    return random.Random(f"{split}:{kind}:{seed}")


def _fresh_world(split: str, rng: random.Random, small: bool = True):
    used = set(core_world().names()) if split == "train" else set()
    n = (8, 4, 3, 2) if small else (40, 12, 10, 6)
    return make_world(split, rng.randrange(10**9), *n, used=used)


def fewshot_examples(task: str, n: int, rng: random.Random, split: str, labels: list[str] | None = None):
    if task not in FEWSHOT_TASKS:
        raise ValueError(f"unknown few-shot task {task!r}; choose one of {sorted(FEWSHOT_TASKS)}")
    w = _fresh_world(split, rng)
    out = []
    if task == "arbitrary":
        a, b = labels or rng.sample(_NONCE[split], 2)
    for _ in range(n):
        if task == "sentiment":
            good = rng.random() < 0.5
            place = rng.choice(w.places).name
            text = f"In {place}, {rng.choice(_SUBJECTS)} was {rng.choice(_GOOD if good else _BAD)}."
            out.append({"text": text, "label": "positive" if good else "negative"})
        elif task == "workplace":
            occ = rng.choice(OCCUPATIONS)
            out.append({"text": f"{rng.choice(w.people).name} is {a_(occ)}.", "label": WORKPLACE[occ]})
        else:
            animal = rng.random() < 0.5
            thing = rng.choice(_ANIMALS if animal else _TOOLS)
            out.append({"text": f"a {rng.choice(COLOURS)} {thing}", "label": a if animal else b})
    return out


def fewshot_prompt(examples: list[dict], query: dict) -> str:
    shots = "".join(TEMPLATES["fewshot_example"].format(**ex) for ex in examples)
    return shots + TEMPLATES["fewshot_query"].format(text=query["text"])


_ITEMS = ["apples", "coins", "books", "stones", "shells", "marbles", "pears", "stamps"]


def arithmetic(n: int, steps: int, rng: random.Random, split: str) -> list[dict]:
    """Word problems of `steps` operations on small numbers (every intermediate value stays in 0..40)."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    w = _fresh_world(split, rng)
    out = []
    for _ in range(n):
        name = rng.choice(w.people).name.split()[0]
        item = rng.choice(_ITEMS)
        value = rng.randint(1, 20)
        q = [f"{name} has {value} {item}."]
        sol = [f"{name} starts with {value} {item}."]
        for _ in range(steps):
            if value >= 2 and (value > 30 or rng.random() < 0.5):
                b = rng.randint(1, min(value, 9))
                q.append(rng.choice([f"Then {name} gives away {b}.", f"Then {name} loses {b}.",
                                     f"Then {name} sells {b}."]))
                sol.append(f"{value} - {b} = {value - b}.")
                value -= b
            else:
                b = rng.randint(1, 9)
                q.append(rng.choice([f"Then {name} finds {b} more.", f"Then {name} buys {b} more.",
                                     f"Then a friend gives {name} {b} more."]))
                sol.append(f"{value} + {b} = {value + b}.")
                value += b
        q.append(f"How many {item} does {name} have now?")
        sol.append(f"The answer is {value}.")
        out.append({"question": " ".join(q), "solution": "\n".join(sol), "answer": value, "steps": steps})
    return out


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def passkey(n: int, context_tokens: int, depth: float, rng: random.Random, split: str,
            count_tokens=None) -> list[dict]:
    """Long documents of entity articles with a five-digit pass key planted at `depth` (0 = start, 1 = end).

    `count_tokens` (text -> int) measures length; without it, four characters count as one token."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be between 0 and 1, got {depth}")
    count = count_tokens or _approx_tokens
    out = []
    for _ in range(n):
        key = str(rng.randint(10000, 99999))
        needle = f"The pass key is {key}. Remember it. {key} is the pass key."
        budget = context_tokens - count(needle) - 16  # room for the question
        parts, used = [], 0
        while True:
            w = _fresh_world(split, rng)
            for e in w.entities():
                p = article(e, rng)
                c = count(" " + p)
                if used + c > budget:
                    break
                parts.append(p)
                used += c
            else:
                continue
            break
        pos = round(depth * len(parts))
        parts.insert(pos, needle)
        context = " ".join(parts)
        out.append({"context": context, "question": "What is the pass key?", "answer": key,
                    "depth": depth, "length": count(context)})
    return out


def nonce_keys(n_pairs: int, rng: random.Random) -> list[str]:
    """`n_pairs` different four-letter nonce keys (consonant-vowel twice), e.g. "bada", "zuki"."""
    keys: list[str] = []
    while len(keys) < n_pairs:
        k = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(2))
        if k not in keys:
            keys.append(k)
    return keys


def recall(n: int, n_pairs: int, rng: random.Random, split: str) -> list[dict]:
    """Associative recall: a list of `key: value` lines, then a question for one key's value."""
    out = []
    for _ in range(n):
        keys = nonce_keys(n_pairs, rng)
        vals = [str(rng.randint(100, 999)) for _ in keys]
        i = rng.randrange(n_pairs)
        ctx = "\n".join(f"{k}: {v}" for k, v in zip(keys, vals, strict=True))
        out.append({"context": ctx, "question": f"What is the value of {keys[i]}?", "answer": vals[i]})
    return out


def qa(n: int, rng: random.Random, split: str, open_book: bool) -> list[dict]:
    out = []
    if open_book:
        while len(out) < n:
            w = _fresh_world(split, rng)
            for e in rng.sample(w.entities(), 3):
                q, a, key = rng.choice([(rng.choice(f.questions), f.answer, f.key) for f in facts(e)])
                out.append({"context": article(e, rng), "question": q, "answer": a, "key": key})
        return out[:n]
    pool = closed_book_entities(held_out=split == "eval")
    for _ in range(n):
        f = rng.choice(facts(rng.choice(pool)))
        out.append({"context": None, "question": rng.choice(f.questions), "answer": f.answer, "key": f.key})
    return out


def rag(n_entities: int, rng: random.Random, split: str) -> dict:
    counts = (max(1, n_entities // 2), max(1, n_entities // 5), max(1, n_entities // 5),
              max(1, n_entities - n_entities // 2 - 2 * (n_entities // 5)))
    w = make_world(split, rng.randrange(10**9), *counts)
    docs, questions = [], []
    for i, e in enumerate(w.entities()):
        doc_id = f"doc-{i:04d}"
        docs.append({"doc_id": doc_id, "title": title(e), "text": article(e, rng, filler=0.5)})
        f = rng.choice(facts(e))
        questions.append({"question": rng.choice(f.questions), "answer": f.answer, "doc_id": doc_id})
    return {"documents": docs, "questions": questions}


def biography(p, rng: random.Random) -> str:
    first = p.name.split()[0]
    lines = [f"{p.name} was born in {p.birth_year}.",
             rng.choice([f"As a child, {first} liked the colour {p.colour}.",
                         f"The favourite colour of {p.name} is {p.colour}."]),
             rng.choice([f"Later, {first} moved to {p.home_city}.", f"{p.name} lives in {p.home_city}."]),
             rng.choice([f"There {first} became {a_(p.occupation)} and joined {p.employer}.",
                         f"{p.name} works as {a_(p.occupation)} for {p.employer}."])]
    return " ".join(lines)


def documents(n: int, rng: random.Random, split: str) -> list[dict]:
    out = []
    while len(out) < n:
        w = _fresh_world(split, rng)
        for e in w.entities():
            text = biography(e, rng) if e.kind == "person" and rng.random() < 0.5 else article(e, rng)
            out.append({"doc_id": f"{split}-{len(out):05d}", "title": title(e), "text": text})
    return out[:n]
