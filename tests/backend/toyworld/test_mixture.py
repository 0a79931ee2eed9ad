"""Training mixtures (issue 14): v1 stays byte-identical; the "context" mixture's documents teach the
evaluated formats (MQAR, bursty few-shot over Zipfian labels with held-out labels, multi-passage QA, long
documents)."""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections import Counter

import pytest

from backend import toyworld as tw
from backend.rag import CONTEXT_SEPARATOR
from backend.toyworld import corpus, probes
from backend.toyworld import mixture as M
from backend.toyworld.tokenizer import load_tokenizer

# sha256 of the first 50 documents of the v1 stream for seed 0 (each followed by a NUL byte), and of
# training_corpus(20_000, seed="0.3"), computed before mixture.py existed: the bundled checkpoints' stream.
V1_DOCS_SHA = "9d91f819ea9fe45198bc93fe9575a274ea576e7f4be0006bb6cf4cda13684c5e"
V1_CORPUS_SHA = "1fc9def35ad06e46075212e117bfcb3d7d71f431996aced223db4ed377acc90a"
RECALL_LINE = re.compile(r"^ ([a-z]{4}): (\d{3})$")


def _sha(docs) -> str:
    h = hashlib.sha256()
    for doc in docs:
        h.update(doc.encode())
        h.update(b"\x00")
    return h.hexdigest()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def context_docs() -> list[tuple[str, str]]:
    return list(itertools.islice(M.documents_with_kinds(0, "context"), 4000))


def test_v1_stream_is_byte_identical():
    for stream in (corpus.documents(0), M.documents(0), M.documents(0, "v1"), tw.training_documents(0),
                   (doc for _, doc in M.documents_with_kinds(0, "v1"))):
        assert _sha(itertools.islice(stream, 50)) == V1_DOCS_SHA
    assert _sha(tw.training_corpus(20_000, seed="0.3", mixture="v1")) == V1_CORPUS_SHA
    assert _sha(tw.training_corpus(20_000, seed="0.3")) == V1_CORPUS_SHA
    assert M.MIXTURES["v1"] is corpus.MIXTURE and M.TRAINED_BY_MIXTURE["v1"] is corpus.TRAINED


def test_mixture_tables_and_description():
    assert set(M.TRAINED_BY_MIXTURE["context"]) == set(corpus.TRAINED)
    for name, shares in M.MIXTURES.items():  # v1's add up to 1.02 (random.choices normalises): as trained
        assert M.describe(name)["shares"] == shares
    assert abs(sum(M.MIXTURES["context"].values()) - 1) < 1e-9
    assert set(M.MIXTURES["v1"]) < set(M.MIXTURES["context"])  # every v1 skill is still trained
    ctx = M.TRAINED_BY_MIXTURE["context"]
    assert ctx["fewshot_k"] == (0, 16) and ctx["qa_passages"][0] == 1 and ctx["passkey_tokens"][1] == 8000
    d = M.describe("context")
    assert d["labels"] == {**d["labels"], "pool": len(M.LABEL_POOL), "held_out": len(M.HELD_OUT_LABELS)}
    with pytest.raises(ValueError, match="choose one of"):
        next(M.documents(0, "v2"))
    with pytest.raises(ValueError, match="choose one of"):
        M.describe("v2")


def test_passage_separator_is_the_rag_experiments():
    assert M.PASSAGE_SEPARATOR == CONTEXT_SEPARATOR


def test_label_pool(tok):
    pool, held, train = M.LABEL_POOL, M.HELD_OUT_LABELS, M.TRAIN_LABELS
    assert len(pool) >= 200 and pool == sorted(set(pool))
    assert all(re.fullmatch(r"[a-z]{3,}", w) for w in pool)
    one_token = [len(ids) == 1 for ids in tok([" " + w for w in pool], add_special_tokens=False)["input_ids"]]
    assert all(one_token), [w for w, ok in zip(pool, one_token, strict=True) if not ok]
    assert set(probes.NEW_LABELS) <= set(held) and set(probes.TRAINED_LABELS) <= set(train)
    assert not set(held) & set(train) and sorted(held + train) == pool
    assert abs(len(held) - 0.2 * len(pool)) <= 1
    assert sorted(M.ZIPF_ORDER) == sorted(train)
    semantic = {str(x) for spec in tw.FEWSHOT_TASKS.values() for x in spec["labels"]}
    assert not semantic & set(held)  # the v1 few-shot tasks' labels never count as held out


def test_no_held_out_label_is_ever_a_label_in_training(context_docs):
    docs = [d for _, d in context_docs[:2000]]
    labels = Counter(re.findall(r"\nLabel: (\w+)\n", "\n" + "\n".join(docs)))
    assert len(labels) >= 40  # the pattern finds the training labels
    assert not set(labels) & set(M.HELD_OUT_LABELS), set(labels) & set(M.HELD_OUT_LABELS)


def _episodes(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [M.bursty_episode(rng) for _ in range(n)]


def test_bursty_episodes_map_labels_at_random_with_zipfian_frequencies():
    eps = _episodes(1500)
    by_category: dict[str, Counter] = {}
    by_set: dict[frozenset, list] = {}
    draws: Counter = Counter()
    for e in eps:
        cats = [x["category"] for x in e["examples"]]
        assert 1 <= len(cats) <= 16 and e["query"]["category"] in cats  # the answer follows from the examples
        assert all(x["label"] == e["mapping"][x["category"]] for x in [*e["examples"], e["query"]])
        assert len(set(e["mapping"].values())) == len(e["mapping"]) and 2 <= len(e["mapping"]) <= 5
        assert e["text"].endswith(f"Input: {e['query']['text']}\nLabel: {e['query']['label']}\n")
        if e["flipped"]:
            assert e["mapping"] == {"sentiment/positive": "negative", "sentiment/negative": "positive"}
            continue
        words = {w for x in [*e["examples"], e["query"]] for w in re.findall(r"[a-z]+", x["text"].lower())}
        assert not set(e["mapping"].values()) & (words | set(M.HELD_OUT_LABELS))
        draws.update(e["mapping"].values())
        by_set.setdefault(frozenset(e["mapping"]), []).append(tuple(sorted(e["mapping"].items())))
        for c, label in e["mapping"].items():
            by_category.setdefault(c, Counter())[label] += 1
    assert 0.11 < sum(e["flipped"] for e in eps) / len(eps) < 0.19
    assert len(by_category) >= 60  # many categories, not only the probe's animals and tools
    assert len(by_category["kind/animal"]) >= 8  # the same category gets different labels across episodes
    repeated = [m for m in by_set.values() if len(m) >= 3]  # ... and the same categories different mappings
    assert len(repeated) >= 10 and sum(len(set(m)) for m in repeated) >= 0.8 * sum(len(m) for m in repeated)
    assert len(set(by_set[frozenset({"kind/animal", "kind/tool"})])) >= 5  # the probe's own categories
    counts = sorted((draws[w] for w in M.TRAIN_LABELS), reverse=True)
    assert counts[0] == draws[M.ZIPF_ORDER[0]] and counts[0] >= 20 * max(1, counts[len(counts) // 2])
    assert draws[M.ZIPF_ORDER[0]] > draws[M.ZIPF_ORDER[1]] > draws[M.ZIPF_ORDER[9]]
    assert len(draws) >= 100  # the tail is drawn too
    ks = Counter(len(e["examples"]) for e in eps)
    assert min(ks) == 1 and max(ks) == 16


def _parse_mqar(doc: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    ctx, rest = doc.split("\nQuestion: ", 1)
    pairs = [RECALL_LINE.match(line).groups() for line in ctx.split("\n")]
    queries = re.findall(r"What is the value of ([a-z]{4})\?\nAnswer: (\d{3})\n", "Question: " + rest)
    rebuilt = "".join(f"Question: What is the value of {k}?\nAnswer: {v}\n" for k, v in queries)
    assert rebuilt == "Question: " + rest
    return pairs, queries


def test_mqar_blocks(context_docs, tok):
    docs = [d for k, d in context_docs if k == "mqar"]
    assert len(docs) >= 100
    sizes, n_queries = [], []
    for doc in docs:
        pairs, queries = _parse_mqar(doc)
        keys = [k for k, _ in pairs]
        listed = dict(pairs)
        assert len(set(keys)) == len(keys) and len(set(listed.values())) == len(keys)
        assert all(listed[k] == v for k, v in queries)
        assert len({k for k, _ in queries}) == len(queries)
        sizes.append(len(pairs))
        n_queries.append(len(queries))
        ctx = "\n".join(f" {k}: {v}" for k, v in pairs)  # the first query: exactly recall_aligned's prompt
        k0, v0 = queries[0]
        prompt = tw.TEMPLATES["recall"].format(context=ctx, question=f"What is the value of {k0}?")
        assert doc.startswith(prompt + f" {v0}{tw.ANSWER_END}")
    assert min(sizes) == 8 and max(sizes) == 64 and min(n_queries) == 4 and max(n_queries) == 16
    probe = tw.recall_aligned(1, 8, seed=0)[0]  # the probe's lines have the same shape as training's
    assert all(RECALL_LINE.match(line) for line in probe["context"].split("\n"))
    doc = docs[0]
    ids = tok(doc.split("\nAnswer:", 1)[0], add_special_tokens=False)["input_ids"]
    key_ids = tok(" " + _parse_mqar(doc)[1][0][0], add_special_tokens=False)["input_ids"]
    hits = sum(ids[i:i + len(key_ids)] == key_ids for i in range(len(ids)))
    assert hits >= 2  # the same tokens in the list and in the question


def test_multi_passage_qa_gold_position_is_uniform():
    rng = random.Random(0)
    counts = Counter(M.multi_passage_qa(rng, n_passages=4)["gold"] for _ in range(400))
    chi2 = sum((counts[i] - 100) ** 2 / 100 for i in range(4))
    assert chi2 < 16.3, counts  # p = 0.001 at 3 degrees of freedom
    by_n: dict[int, Counter] = {}
    for _ in range(600):
        r = M.multi_passage_qa(rng)
        n = len(r["passages"])
        by_n.setdefault(n, Counter())[r["gold"]] += 1
        assert r["answer"] in r["passages"][r["gold"]]
        context = CONTEXT_SEPARATOR.join(r["passages"])
        prompt = tw.TEMPLATES["rag"].format(context=context, question=r["question"])
        assert r["text"] == prompt + f" {r['answer']}\n"
    assert sorted(by_n) == list(range(1, 9))
    relative = Counter(min(3, 4 * g // n) for n, c in by_n.items() if n >= 4 for g in c.elements())
    assert min(relative.values()) > 0.15 * sum(relative.values())  # front, middle and back all gold


def test_stream_multi_qa_documents_have_1_to_8_passages(context_docs):
    docs = [d for k, d in context_docs if k == "multi_qa"]
    n = Counter(len(d.split("\nQuestion: ", 1)[0].split(CONTEXT_SEPARATOR)) for d in docs)
    assert min(n) == 1 and max(n) == 8


def test_long_documents():
    rows = list(itertools.islice(M.long_documents_with_kinds(0), 120))
    assert [d for _, d in rows] == list(itertools.islice(tw.long_documents(0), 120))
    assert Counter(k for k, _ in rows).keys() == M.LONG_MIXTURE.keys()
    prose = [len(d) // 4 for k, d in rows if k != "mqar"]
    assert min(prose) >= 1400 and max(prose) <= 8100 and min(prose) < 2500 and max(prose) > 7000
    for kind, doc in rows:
        assert re.search(r"\nAnswer: [^\n]+\n$", doc)
        if kind == "passkey":
            key = doc.rsplit("\nAnswer: ", 1)[1].strip()
            assert doc.count(f"The pass key is {key}.") == 1 and 1 <= doc.count("Remember it.") <= 4
        if kind == "mqar":
            pairs, queries = _parse_mqar(doc)
            assert M.LONG_MQAR_PAIRS[0] <= len(pairs) <= M.LONG_MQAR_PAIRS[1] and 8 <= len(queries) <= 32
            est = len(pairs) * M.MQAR_LINE_TOKENS + len(queries) * M.MQAR_QUERY_TOKENS
            assert 1200 <= est <= 8000
    rng = random.Random(0)
    for tokens in (1500, 8000):
        r = M.multi_passage_qa(rng, tokens=tokens)
        assert r["answer"] in r["passages"][r["gold"]] and tokens - 200 < len(r["text"]) // 4 <= tokens + 100
        assert len({p.split(".")[0] for p in r["passages"]}) > 0.8 * len(r["passages"])  # different entities
    assert list(itertools.islice(M.long_documents(1), 3)) != [d for _, d in rows[:3]]
    with pytest.raises(ValueError, match="split"):
        next(M.long_documents(0, split="test"))


def test_long_mqar_sizes_are_model_tokens(tok):
    docs = [d for k, d in itertools.islice(M.long_documents_with_kinds(3), 60) if k == "mqar"]
    lengths = [len(ids) for ids in tok(docs, add_special_tokens=False)["input_ids"]]
    assert min(lengths) >= 1000 and max(lengths) <= 8192


def test_context_stream_is_deterministic_per_seed():
    def first(seed):
        return list(itertools.islice(M.documents(seed, "context"), 40))

    assert first(0) == first(0) and first("0.3") == first("0.3")
    assert first(0) != first(1) and first("0.3") != first(0)
    assert first(0) != list(itertools.islice(M.documents(0, "v1"), 40))
    docs = list(tw.training_corpus(20_000, seed="0.3", mixture="context"))
    assert 20_000 <= sum(len(d) // 4 + 1 for d in docs) < 20_000 + 2_000


def test_document_shares_follow_the_weights(context_docs):
    shares = M.MIXTURES["context"]
    counts = Counter(k for k, _ in context_docs)
    for kind, w in shares.items():
        sd = (w * (1 - w) / len(context_docs)) ** 0.5
        assert abs(counts[kind] / len(context_docs) - w) < 4 * sd + 1e-3, (kind, counts[kind])


def context_token_share(n_tokens: int = 1_000_000, seed: int = 0) -> dict[str, float]:
    """Approximate-token share of each kind in the first n_tokens of the context stream, and "context_use"."""
    tokens: Counter = Counter()
    for kind, doc in M.documents_with_kinds(seed, "context"):
        if sum(tokens.values()) >= n_tokens:
            break
        tokens[kind] += len(doc) // 4 + 1
    total = sum(tokens.values())
    out = {k: tokens[k] / total for k in M.MIXTURES["context"]}
    out["context_use"] = sum(out[k] for k in M.CONTEXT_USE)
    return out


def test_context_use_token_share_is_as_documented():
    share = context_token_share(600_000)
    print("context mixture token shares:", {k: round(v, 3) for k, v in share.items()})
    low, high = M.CONTEXT_TOKEN_SHARE
    assert low <= share["context_use"] <= high
    assert share["mqar"] + share["bursty"] + share["multi_qa"] > 0.3


def test_short_passkey_documents_are_the_probe_format(context_docs):
    docs = [d for k, d in context_docs if k == "passkey"]
    assert docs
    for d in docs:
        key = d.rsplit("\nAnswer: ", 1)[1].strip()
        assert d.count(f"The pass key is {key}. Remember it. {key} is the pass key.") == 1
        assert 1 <= d.count("Remember it.") <= 4 and len(d) // 4 <= M.SHORT_TRAINED["passkey_tokens"][1]
