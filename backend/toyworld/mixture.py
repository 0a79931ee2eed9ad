"""Training mixtures (issue 14): "v1", the corpus the bundled checkpoints were trained on
(backend/toyworld/corpus.py, byte for byte), and "context", a mixture in which using the context can emerge.

    MIXTURES[name]              {kind: share of documents}; MIXTURES["v1"] is corpus.MIXTURE itself
    TRAINED_BY_MIXTURE[name]    {skill: (low, high)} like corpus.TRAINED (the "v1" entry is that object)
    LABEL_POOL, TRAIN_LABELS, HELD_OUT_LABELS   few-shot label words, each one token with its leading space
    documents(seed=0, mixture="v1")         endless stream; documents_with_kinds() yields (kind, text)
    training_corpus(n_tokens_approx, seed=0, mixture="v1")   documents until about n tokens (4 chars each)
    long_documents(seed=0, split="train")   endless long documents (1,500..8,000 tokens), the long phase;
                                            long_documents_with_kinds() yields (kind, text)
    describe(mixture)           -> {"mixture", "shares", "trained", "labels", ...} for a model card
    bursty_episode(rng, k=None), mqar_block(rng, n_pairs, n_queries),
    multi_passage_qa(rng, n_passages=None, tokens=None)   one structured document each ("text": the document)
Seeds may be ints or strings ("0.3"). Pure Python, deterministic for a seed. "v1" is exactly
corpus.documents / corpus.training_corpus (tests/backend/toyworld/test_mixture.py pins its hash).

The "context" mixture: kind, share of documents, share of approximate tokens (measured over 5M of them).
    core_article .25 .19 | core_bio .07 .03 | tell .06 .05 | qa_open .02 .04 | qa_closed .08 .03
    cot .19 .13 | direct .06 .03 | recall .01 .005 | copy .02 .01    (v1's generators, formats and ranges)
    fewshot .06 .07   v1's few-shot tasks (sentiment, workplace, nonce labels), k = 0..16 (v1: 0..8)
    passkey .01 .05   passkey_probe's format: 1..4 needles (one of them the pass key), 150..850 tokens
    mqar .05 .125     one list of 8..64 lines " key: value" (nonce keys, all different; three-digit values,
                      all different), then 4..16 queries of different keys (Zoology's multi-query recall).
                      The first is exactly recall_aligned's prompt, TEMPLATES["recall"] + " V\\n"; the
                      others follow as "Question: What is the value of K?\\nAnswer: V\\n".
    bursty .09 .12    few-shot episodes over 2..5 categories of items: "a {colour} {animal}" / "{tool}" (the
                      probe's), sentiment remarks, "{Person} is a {occupation}.", "{Place} flies a
                      {colour} flag.", "{Name} has {n} {items}.", "{Org} makes {product}.", "{Place} lies
                      in {region}.", event names, person vs town names, small vs large numbers; half from
                      one family (one format), half from any. Each category gets a label of TRAIN_LABELS
                      drawn at Zipfian frequency (1/rank over the fixed random ZIPF_ORDER), without
                      replacement and never a word of the episode's items: a random mapping per episode.
                      k = 1..16 examples "Input: ...\\nLabel: L\\n" (the query's category among them), then
                      the query "Input: ...\\nLabel:" + " L\\n". 15% of the episodes are sentiment with
                      positive and negative swapped (the "flipped" probe): the examples overrule training.
    multi_qa .03 .12  1..8 whole articles about different entities of one fresh train world, joined by
                      PASSAGE_SEPARATOR (= backend.rag.CONTEXT_SEPARATOR), the gold one at a uniformly random
                      position; then TEMPLATES["rag"] + " answer\\n" (the RAG experiment's prompt).
Why these shares: the context-use kinds (CONTEXT_USE: mqar, bursty, multi_qa, qa_open, passkey, recall,
copy), whose answer only the document itself gives, take 0.47 of the approximate tokens (the tested range
CONTEXT_TOKEN_SHARE is 0.40..0.50; in model tokens 0.52, as digits are one token each). The rest keeps the
other skills: core-world articles and biographies (the facts of closed-book QA) and arithmetic get the most
documents. MQAR gets the largest new token share, as the skill that separates the families; bursty episodes
and v1's kinds are short, so their document shares exceed their token shares. Every document fits a
1,024-token window (the longest: pass key ~1,000 model tokens, MQAR of 64 pairs and 16 queries ~800).

long_documents (the curriculum's last phase, 4,096..8,192-token windows), the answer always at the end:
    passkey .35    passkey_probe documents of 1,500..8,000 approximate tokens, 1..4 needles, random depths
    multi_qa .35   multi_passage_qa with articles to 1,500..8,000 approximate tokens (~20..110 passages)
    mqar .30       one list of 150..900 pairs and 8..32 queries, sized in model tokens (a " key: value"
                   line is ~8 model tokens but ~3 approximate ones) to 1,500..8,000 model tokens
Prose has ~1.08 model tokens per approximate token: the longest pass-key and QA documents reach ~8,700
model tokens. TRAINED_BY_MIXTURE["context"] covers both phases; SHORT_TRAINED is the 1,024-token stream.

Labels: LABEL_POOL holds the lowercase alphabetic words of 3+ letters that are one token with their leading
space in the bundled tokenizer, less obvious word-piece junk, the commonest function words, the templates'
format words (answer, value, key, pass, think, step, let) and the semantic few-shot labels (positive,
negative, workplaces). HELD_OUT_LABELS (20%, probes.NEW_LABELS among them) never label anything in
training; probes.TRAINED_LABELS are in TRAIN_LABELS.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from itertools import accumulate

from . import corpus
from . import tasks as T
from .probes import NEW_LABELS, TRAINED_LABELS, passkey_probe
from .text import a_, article, cap, facts
from .world import _EVENT_KIND, COLOURS, OCCUPATIONS, PRODUCTS, REGIONS

SPLIT = "train"
# Must equal backend.rag.CONTEXT_SEPARATOR (how the RAG experiment joins passages); toyworld may not import
# backend.rag, so tests/backend/toyworld/test_mixture.py checks the two agree.
PASSAGE_SEPARATOR = "\n"

MIXTURES: dict[str, dict[str, float]] = {
    "v1": corpus.MIXTURE,
    "context": {
        "core_article": 0.25, "core_bio": 0.07, "tell": 0.06, "qa_open": 0.02, "qa_closed": 0.08,
        "fewshot": 0.06, "cot": 0.19, "direct": 0.06, "passkey": 0.01, "recall": 0.01, "copy": 0.02,
        "mqar": 0.05, "bursty": 0.09, "multi_qa": 0.03,
    },
}
CONTEXT_USE = ("mqar", "bursty", "multi_qa", "qa_open", "passkey", "recall", "copy")
CONTEXT_TOKEN_SHARE = (0.40, 0.50)  # of the "context" stream's approximate tokens
LONG_MIXTURE: dict[str, float] = {"passkey": 0.35, "multi_qa": 0.35, "mqar": 0.30}
LONG_TOKENS = (1500, 8000)
LONG_MQAR_PAIRS = (150, 900)  # at most 900 different three-digit values
LONG_QA_PASSAGES = 128
MQAR_LINE_TOKENS, MQAR_QUERY_TOKENS = 8, 14  # model tokens of a " key: value" line / a question and answer
FLIP_SHARE = 0.15
SHORT_TRAINED: dict[str, tuple[int, int]] = {  # the 1,024-token stream alone
    "fewshot_k": (0, 16), "arithmetic_steps": corpus.TRAINED["arithmetic_steps"],
    "passkey_tokens": (150, 850), "recall_pairs": (2, 64), "copy_words": corpus.TRAINED["copy_words"],
    "qa_passages": (1, 8),
}
TRAINED_BY_MIXTURE: dict[str, dict[str, tuple[int, int]]] = {
    "v1": corpus.TRAINED,
    "context": {**SHORT_TRAINED, "passkey_tokens": (150, LONG_TOKENS[1]),
                "recall_pairs": (2, LONG_MQAR_PAIRS[1]), "qa_passages": (1, LONG_QA_PASSAGES)},
}
_SHORT = {"mqar_pairs": (8, 64), "mqar_queries": (4, 16), "bursty_k": (1, 16), "bursty_categories": (2, 5)}

LABEL_POOL: list[str] = """
anvil apples argue article astronomer away awful axe badger baker based became best bicycles birth black
blacksmith blick blue books born bouba bread brown built buys carpenter cat cheerful child chisel clocks coast
coins cold colour come crow delicious delight delightful detail details disgusting doctor doors dread dreadful
dull east else employ employed employs engineer established event excellent far farmer favour favourite fep
find finds first flag flies found founded fox fri friend frog gardener gives glass goat green grew grey hammer
hap happen happened held heron high highlands home horrible horse houses islands join joined journey kettle
kiki known ladder lamps lantern letters librar librarian lie lies like liked likes live lives living long lorp
loses lovely loves make makes making many maps marbles mark market men mentioned merchant mip miserable
misspelled more mouse moved music musician name needle north now occupation offices often old opened orange
organ organisation organised other otter owl pain painter paper pear pears people perfect person place poet
population purple put quickly rake record recorded red region room rope rot rotten sailor saw sell sells shell
shells ships shovel show song soup south spade splendid stamps star started starts still stones stories story
stud sum summer survive take tea teacher terrible time today told toma too took town trade valley violins
visitors weather weaver west whale white win winters wonderful work works world year yellow zup
""".split()
_FREE = [w for w in LABEL_POOL if w not in NEW_LABELS and w not in TRAINED_LABELS]
_N_HELD = round(0.2 * len(LABEL_POOL)) - len(NEW_LABELS)  # besides NEW_LABELS
HELD_OUT_LABELS: list[str] = sorted(
    [*NEW_LABELS, *random.Random("mixture:held-out-labels").sample(_FREE, _N_HELD)])
TRAIN_LABELS: list[str] = [w for w in LABEL_POOL if w not in set(HELD_OUT_LABELS)]
# TRAIN_LABELS in Zipf rank order (rank 1 first): label i is drawn at frequency proportional to 1 / (i + 1)
ZIPF_ORDER: list[str] = random.Random("mixture:zipf-order").sample(TRAIN_LABELS, len(TRAIN_LABELS))
_ZIPF_CUM: list[float] = list(accumulate(1.0 / rank for rank in range(1, len(ZIPF_ORDER) + 1)))

FAMILIES: dict[str, list[str]] = {
    "kind": ["animal", "tool"], "sentiment": ["positive", "negative"], "occupation": list(OCCUPATIONS),
    "flag": list(COLOURS), "count": list(T._ITEMS), "product": list(PRODUCTS), "region": list(REGIONS),
    "event": list(_EVENT_KIND), "name": ["person", "town"], "number": ["small", "large"],
}
CATEGORIES: list[tuple[str, str]] = [(f, v) for f, vs in FAMILIES.items() for v in vs]


def _check(mixture: str) -> None:
    if mixture not in MIXTURES:
        raise ValueError(f"Unknown training mixture {mixture!r}; choose one of {', '.join(MIXTURES)}.")


def _item(family: str, value: str, rng: random.Random, world) -> str:
    """One input text of category (family, value), drawn with `rng` from a fresh world's entities."""
    if family == "kind":
        return f"a {rng.choice(COLOURS)} {rng.choice(T._ANIMALS if value == 'animal' else T._TOOLS)}"
    if family == "sentiment":
        adj = rng.choice(T._GOOD if value == "positive" else T._BAD)
        return f"In {rng.choice(world.places).name}, {rng.choice(T._SUBJECTS)} was {adj}."
    if family == "occupation":
        return f"{rng.choice(world.people).name} is {a_(value)}."
    if family == "flag":
        return f"{rng.choice(world.places).name} flies a {value} flag."
    if family == "count":
        return f"{rng.choice(world.people).name.split()[0]} has {rng.randint(2, 20)} {value}."
    if family == "product":
        return f"{cap(rng.choice(world.orgs).name)} makes {value}."
    if family == "region":
        return f"{rng.choice(world.places).name} lies in {value}."
    if family == "event":
        return f"the {rng.choice(world.places).name} {value} of {rng.randint(1800, 2020)}"
    if family == "name":
        return rng.choice(world.people if value == "person" else world.places).name
    if family == "number":
        return f"the number {rng.randint(1, 99) if value == 'small' else rng.randint(100, 9999)}"
    raise ValueError(f"unknown item family {family!r}; choose one of {', '.join(FAMILIES)}")


def zipf_labels(n: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[str]:
    """n different training labels, each drawn at frequency 1/rank (ZIPF_ORDER), none of them in `exclude`."""
    out: list[str] = []
    while len(out) < n:
        w = rng.choices(ZIPF_ORDER, cum_weights=_ZIPF_CUM)[0]
        if w not in exclude and w not in out:
            out.append(w)
    return out


def bursty_episode(rng: random.Random, k: int | None = None, split: str = SPLIT) -> dict:
    """One bursty few-shot document: {"examples": [{text, label, category}], "query": {...},
    "mapping": {category: label}, "flipped", "text"}; k examples (drawn 1..16 when None)."""
    world = T._fresh_world(split, rng)
    k = rng.randint(*_SHORT["bursty_k"]) if k is None else k
    if k < 1:
        raise ValueError(f"A bursty episode needs at least one example (its query's category); got k = {k}.")
    flipped = rng.random() < FLIP_SHARE
    if flipped:
        cats = [("sentiment", "positive"), ("sentiment", "negative")]
    else:
        n = rng.randint(*_SHORT["bursty_categories"])
        if rng.random() < 0.5:  # categories of one family (same format, harder) or of any families
            fam = rng.choice([f for f, vs in FAMILIES.items() if len(vs) >= n])
            cats = [(fam, v) for v in rng.sample(FAMILIES[fam], n)]
        else:
            cats = rng.sample(CATEGORIES, n)
    query_cat = rng.choice(cats)
    order = [rng.choice(cats) for _ in range(k - 1)]
    order.insert(rng.randint(0, k - 1), query_cat)  # the query's category is among the examples
    order.append(query_cat)
    texts = [_item(*c, rng, world) for c in order]
    if flipped:
        mapping = {cats[0]: "negative", cats[1]: "positive"}
    else:
        words = {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
        mapping = dict(zip(cats, zipf_labels(len(cats), rng, exclude=words), strict=True))
    rows = [{"text": t, "label": mapping[c], "category": "/".join(c)}
            for t, c in zip(texts, order, strict=True)]
    text = T.fewshot_prompt(rows[:-1], rows[-1]) + f" {rows[-1]['label']}{T.ANSWER_END}"
    named = {"/".join(c): label for c, label in mapping.items()}
    return {"examples": rows[:-1], "query": rows[-1], "mapping": named, "flipped": flipped, "text": text}


def mqar_block(rng: random.Random, n_pairs: int, n_queries: int) -> dict:
    """{"context", "pairs": [(key, value)], "queries": [(question, answer)], "text"}: recall_aligned's
    list, then min(n_queries, n_pairs) questions about different keys; the first in the probe's prompt."""
    if not 1 <= n_pairs <= 900:
        raise ValueError(f"n_pairs must be 1..900 (three-digit values, all different), got {n_pairs}.")
    keys = T.nonce_keys(n_pairs, rng)
    vals = [str(v) for v in rng.sample(range(100, 1000), n_pairs)]
    ctx = "\n".join(f" {k}: {v}" for k, v in zip(keys, vals, strict=True))
    asked = rng.sample(range(n_pairs), max(1, min(n_queries, n_pairs)))
    queries = [(f"What is the value of {keys[i]}?", vals[i]) for i in asked]
    q0, a0 = queries[0]
    text = T.TEMPLATES["recall"].format(context=ctx, question=q0) + f" {a0}{T.ANSWER_END}" + "".join(
        T.TEMPLATES["qa_closed"].format(question=q) + f" {a}{T.ANSWER_END}" for q, a in queries[1:])
    return {"context": ctx, "pairs": list(zip(keys, vals, strict=True)), "queries": queries, "text": text}


def multi_passage_qa(rng: random.Random, n_passages: int | None = None, tokens: int | None = None,
                     split: str = SPLIT) -> dict:
    """{"passages", "gold" (0-based), "question", "answer", "text"}: n_passages articles of one fresh
    world, or (tokens given) articles of fresh worlds to about `tokens` approximate tokens (at most
    LONG_QA_PASSAGES); the gold passage at a uniformly random position."""
    filler = rng.choice([0.3, 0.5])  # qa_open's articles / rag_corpus's
    if tokens is None:
        n = rng.randint(*SHORT_TRAINED["qa_passages"]) if n_passages is None else n_passages
        if not 1 <= n <= 17:
            raise ValueError(f"n_passages must be 1..17 (one small world's entities), got {n}.")
        ents = rng.sample(T._fresh_world(split, rng).entities(), n)
        passages = [" ".join(article(e, rng, filler=filler).split()) for e in ents]
    else:
        budget, used, ents, passages = tokens - 40, 0, [], []  # room for the question and answer
        while used < budget and len(ents) < LONG_QA_PASSAGES:
            pool = T._fresh_world(split, rng, small=False).entities()
            rng.shuffle(pool)
            for e in pool:
                if used >= budget or len(ents) >= LONG_QA_PASSAGES:
                    break
                if any(e.name == x.name for x in ents):  # fresh worlds may repeat a name
                    continue
                ents.append(e)
                passages.append(" ".join(article(e, rng, filler=filler).split()))
                used += T._approx_tokens(passages[-1]) + 1
    gold = rng.randrange(len(ents))
    f = rng.choice(facts(ents[gold]))
    question = rng.choice(f.questions)
    context = PASSAGE_SEPARATOR.join(passages)
    text = T.TEMPLATES["rag"].format(context=context, question=question) + f" {f.answer}{T.ANSWER_END}"
    return {"passages": passages, "gold": gold, "question": question, "answer": f.answer, "text": text}


def _passkey(rng: random.Random, tokens: int, split: str = SPLIT) -> str:
    r = passkey_probe(1, tokens, rng.random(), rng.randint(1, 4), rng, split)[0]
    return T.TEMPLATES["passkey"].format(**r) + f" {r['answer']}{T.ANSWER_END}"


def _context_doc(kind: str, rng: random.Random) -> str:
    if kind == "mqar":
        n_pairs, n_queries = rng.randint(*_SHORT["mqar_pairs"]), rng.randint(*_SHORT["mqar_queries"])
        return mqar_block(rng, n_pairs, n_queries)["text"]
    if kind == "bursty":
        return bursty_episode(rng)["text"]
    if kind == "multi_qa":
        return multi_passage_qa(rng)["text"]
    if kind == "passkey":
        return _passkey(rng, rng.randint(*SHORT_TRAINED["passkey_tokens"]))
    if kind == "fewshot":
        task = rng.choice(sorted(T.FEWSHOT_TASKS))
        k = rng.randint(*SHORT_TRAINED["fewshot_k"])
        ex = T.fewshot_examples(task, k + 1, rng, SPLIT)
        return T.fewshot_prompt(ex[:k], ex[k]) + f" {ex[k]['label']}\n"
    return corpus._doc(kind, rng)  # the v1 generators and ranges


def documents_with_kinds(seed: int | str = 0, mixture: str = "v1") -> Iterator[tuple[str, str]]:
    """Endless (kind, document) pairs of a mixture; the documents are exactly documents(seed, mixture)."""
    _check(mixture)
    rng = random.Random(f"{SPLIT}:corpus:{seed}" if mixture == "v1" else f"{SPLIT}:corpus:{mixture}:{seed}")
    kinds, weights = zip(*MIXTURES[mixture].items(), strict=True)
    make = corpus._doc if mixture == "v1" else _context_doc
    while True:
        kind = rng.choices(kinds, weights)[0]
        yield kind, make(kind, rng)


def documents(seed: int | str = 0, mixture: str = "v1") -> Iterator[str]:
    """Endless stream of training documents of a mixture ("v1": corpus.documents itself)."""
    _check(mixture)
    if mixture == "v1":
        return corpus.documents(seed)
    return (doc for _, doc in documents_with_kinds(seed, mixture))


def training_corpus(n_tokens_approx: int, seed: int | str = 0, mixture: str = "v1") -> Iterator[str]:
    """Documents until about `n_tokens_approx` tokens (four characters count as one token)."""
    _check(mixture)
    if mixture == "v1":
        yield from corpus.training_corpus(n_tokens_approx, seed)
        return
    total = 0
    for doc in documents(seed, mixture):
        if total >= n_tokens_approx:
            return
        total += len(doc) // 4 + 1
        yield doc


def long_documents_with_kinds(seed: int | str = 0, split: str = SPLIT) -> Iterator[tuple[str, str]]:
    """Endless (kind, long document) pairs; the documents are exactly long_documents(seed, split)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    rng = random.Random(f"{split}:long:{seed}")
    kinds, weights = zip(*LONG_MIXTURE.items(), strict=True)
    while True:
        kind = rng.choices(kinds, weights)[0]
        tokens = rng.randint(*LONG_TOKENS)
        if kind == "passkey":
            yield kind, _passkey(rng, tokens, split)
        elif kind == "multi_qa":
            yield kind, multi_passage_qa(rng, tokens=tokens, split=split)["text"]
        else:
            n_queries = rng.randint(8, 32)
            pairs = (tokens - n_queries * MQAR_QUERY_TOKENS) // MQAR_LINE_TOKENS
            pairs = min(max(pairs, LONG_MQAR_PAIRS[0]), LONG_MQAR_PAIRS[1])
            yield kind, mqar_block(rng, pairs, n_queries)["text"]


def long_documents(seed: int | str = 0, split: str = SPLIT) -> Iterator[str]:
    """Endless long documents (1,500..8,000 tokens, the answer at the end) for the long-context phase."""
    return (doc for _, doc in long_documents_with_kinds(seed, split))


def describe(mixture: str) -> dict:
    """A short summary of a mixture for a model card: shares, trained ranges, label counts."""
    _check(mixture)
    out = {"mixture": mixture, "shares": dict(MIXTURES[mixture]),
           "trained": dict(TRAINED_BY_MIXTURE[mixture])}
    if mixture == "context":
        out.update({
            "trained_short_phase": dict(SHORT_TRAINED), "context_use_kinds": list(CONTEXT_USE),
            "context_token_share": CONTEXT_TOKEN_SHARE, "long_shares": dict(LONG_MIXTURE),
            "long_tokens": LONG_TOKENS,
            "labels": {"pool": len(LABEL_POOL), "train": len(TRAIN_LABELS), "held_out": len(HELD_OUT_LABELS),
                       "zipf_exponent": 1.0, "flipped_share": FLIP_SHARE},
        })
    return out
