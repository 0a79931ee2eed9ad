"""The probes behind the experiments' current task versions (issue 13), and the training stream they must not touch."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter

import pytest

from backend import toyworld as tw
from backend.toyworld.tokenizer import load_tokenizer

# sha256 over the first 3,000 documents of training_documents(0), each followed by a NUL byte. The bundled models
# were trained on this stream: any change to the corpus (or to a generator it calls) must be a deliberate retraining.
TRAINING_STREAM_SHA = "34281449fc33f7a3683ecdf59403bb3ef3940d7ea455d28581c3713bbd2d5793"


def test_training_stream_is_byte_identical():
    h = hashlib.sha256()
    for doc in itertools.islice(tw.training_documents(0), 3000):
        h.update(doc.encode())
        h.update(b"\x00")
    assert h.hexdigest() == TRAINING_STREAM_SHA, (
        "The training corpus changed. The bundled models were trained on it: keep it byte-identical, or retrain "
        "and record the new hash here.")


def _training_text(n_docs: int = 4000) -> str:
    return "\n".join(itertools.islice(tw.training_documents(0), n_docs))


def test_trained_ranges_are_what_the_corpus_draws():
    text = _training_text()
    copies = [m.group(1).split() for m in re.finditer(r"Repeat after me: (.*)\n", text)]
    assert copies and {len(c) for c in copies} <= set(range(tw.TRAINED["copy_words"][0], tw.TRAINED["copy_words"][1] + 1))
    assert max(len(c) for c in copies) >= 25  # the range is used, not just allowed
    assert all(w in tw.COPY_WORDS for c in copies for w in c)
    assert tw.TEMPLATES["copy"].format(text="x y") == "Repeat after me: x y\n"


def test_fewshot_episodes_map_labels_at_random_per_instance():
    tok = load_tokenizer()
    eps = tw.fewshot_episodes("arbitrary", 400, 8, seed=1)
    cats = Counter(e["query"]["category"] for e in eps)
    assert cats == {"animal": 200, "tool": 200}  # gold label balanced: no label-blind strategy beats 0.5
    animal_labels = Counter(e["mapping"]["animal"] for e in eps)
    assert set(animal_labels) == set(tw.TRAINED_LABELS)  # every trained label plays either role
    assert max(animal_labels.values()) < 2 * 400 / len(tw.TRAINED_LABELS)
    assert len({tuple(sorted(e["mapping"].items())) for e in eps}) >= 40  # per instance, not per pool
    for e in eps:
        assert e["query"]["label"] == e["mapping"][e["query"]["category"]] and len(e["examples"]) == 8
        assert all(x["label"] == e["mapping"][x["category"]] for x in e["examples"])
        assert sorted(e["choices"]) == sorted(e["mapping"].values()) and len(set(e["choices"])) == 2
    for label in tw.TRAINED_LABELS + tw.NEW_LABELS:  # one token each, as the label follows "Label:"
        assert len(tok(" " + label, add_special_tokens=False)["input_ids"]) == 1, label


def test_new_labels_never_label_anything_in_training():
    labels = set(re.findall(r"\nLabel: (\w+)\n", "\n" + _training_text(6000)))
    assert len(labels) >= 20  # the pattern finds the training labels
    assert not labels & set(tw.NEW_LABELS)
    assert not set(tw.NEW_LABELS) & {str(x) for spec in tw.FEWSHOT_TASKS.values() for x in spec["labels"]}
    eps = tw.fewshot_episodes("new-labels", 50, 2, seed=0)
    assert {e["query"]["label"] for e in eps} <= set(tw.NEW_LABELS)


def test_flipped_labels_contradict_training():
    for e in tw.fewshot_episodes("flipped", 60, 4, seed=2):
        for x in [e["query"], *e["examples"]]:
            positive = any(w in x["text"] for w in ("delicious", "wonderful", "lovely", "excellent", "delightful",
                                                    "splendid", "perfect", "cheerful"))
            assert x["label"] == ("negative" if positive else "positive"), x


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_passkey_probe_needles_and_distance(depth):
    rows = tw.passkey_probe(6, 800, depth, keys=3, seed=4)
    for r in rows:
        ctx = r["context"]
        assert ctx.count(f"The pass key is {r['answer']}.") == 1 and ctx.count("The pass key is") == 1
        assert len(r["distractors"]) == 2 and r["answer"] not in r["distractors"]
        assert all(ctx.count(f" is {d}. Remember it.") == 1 for d in r["distractors"])
        assert 600 < r["length"] <= 800
        after = ctx.split(f"{r['answer']} is the pass key.", 1)[1]
        assert r["distance"] == (max(1, len(after.strip()) // 4) if after.strip() else 0)
        if depth == 0.0:
            assert r["distance"] > 0.8 * r["length"]
    single = tw.passkey_probe(3, 500, 1.0, keys=1, seed=0)
    assert all(r["distractors"] == [] and r["distance"] < 60 for r in single)  # at the end, right before the question


def test_recall_keys_tokenise_alike_in_the_list_and_the_question():
    tok = load_tokenizer()
    for r in tw.recall_aligned(30, 8, seed=3):
        lines = r["context"].split("\n")
        assert len(lines) == 8 and len(set(r["values"])) == 8 and lines[r["position"]] == f" {r['key']}: {r['answer']}"
        prompt = tw.TEMPLATES["recall"].format(**r)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        key_ids = tok(" " + r["key"], add_special_tokens=False)["input_ids"]
        hits = [i for i in range(len(ids)) if ids[i:i + len(key_ids)] == key_ids]
        assert len(hits) >= 2, (r["key"], tok.convert_ids_to_tokens(ids))  # once in the list, once in the question


def test_copy_sequences():
    rows = tw.copy_sequences(20, 12, seed=5)
    assert all(len(r["text"].split()) == 12 and r["answer"] == r["text"] for r in rows)
    assert all(w in tw.COPY_WORDS for r in rows for w in r["text"].split())
    assert rows == tw.copy_sequences(20, 12, seed=5) and rows != tw.copy_sequences(20, 12, seed=6)
