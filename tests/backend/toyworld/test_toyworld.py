"""The toy world: determinism, disjoint splits, formats, tokenizer round trip, pack/unpack."""

from __future__ import annotations

import itertools
import re

import pytest

from backend import toyworld as tw
from backend.toyworld import tasks
from backend.toyworld.world import core_world, make_world, split_of


def _public_outputs(seed: int):
    return [
        tw.fewshot_pool("arbitrary", 5, seed), tw.fewshot_pool("sentiment", 5, seed),
        tw.fewshot_pool("workplace", 5, seed), tw.arithmetic_problems(4, 3, seed),
        tw.passkey_documents(2, 300, 0.5, seed), tw.qa_pairs(4, seed, open_book=True),
        tw.qa_pairs(4, seed, open_book=False), tw.rag_corpus(seed, 12), tw.recall_segments(3, 6, seed),
        tw.heldout_documents(4, seed),
    ]


def test_generators_are_deterministic_for_a_seed_and_vary_across_seeds():
    assert _public_outputs(3) == _public_outputs(3)
    a, b = _public_outputs(3), _public_outputs(4)
    assert all(x != y for x, y in zip(a, b, strict=True))
    assert list(itertools.islice(tw.training_documents(1), 20)) == list(itertools.islice(tw.training_documents(1), 20))


def _eval_names() -> set[str]:
    names = set()
    for seed in range(3):
        for d in tw.rag_corpus(seed, 30)["documents"] + tw.heldout_documents(30, seed):
            names.add(d["title"].removeprefix("The ").removeprefix("the "))
    return names


def test_no_eval_entity_appears_in_training_text():
    eval_names = _eval_names()
    assert len(eval_names) > 100 and all(split_of(n) == "eval" or split_of("the " + n) == "eval"
                                         for n in eval_names)
    text = "\n".join(tw.training_corpus(400_000, seed=0))
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(eval_names)) + r")\b")
    assert pattern.search(text) is None


def test_world_names_respect_their_split():
    assert all(split_of(n) == "train" for n in core_world().names())
    assert all(split_of(n) == "eval" for n in make_world("eval", 7).names())
    with pytest.raises(ValueError):
        make_world("test", 0)


def test_formats_and_answers_are_consistent():
    for r in tw.qa_pairs(20, 0, open_book=True):
        assert r["answer"] in r["context"]
    for p in tw.arithmetic_problems(20, 2, 0):
        assert p["solution"].endswith(f"The answer is {p['answer']}.") and p["solution"].count("=") == 2
    for d in tw.passkey_documents(3, 600, 0.25, 0):
        assert d["context"].count(f"The pass key is {d['answer']}.") == 1 and 400 < d["length"] <= 600
    for r in tw.recall_segments(5, 8, 0):
        assert f"{r['question'].split()[-1][:-1]}: {r['answer']}" in r["context"]
    rag = tw.rag_corpus(0, 20)
    by_id = {d["doc_id"]: d["text"] for d in rag["documents"]}
    assert all(q["answer"] in by_id[q["doc_id"]] for q in rag["questions"])
    for task, spec in tw.FEWSHOT_TASKS.items():
        assert {e["label"] for e in tw.fewshot_pool(task, 40, 0)} <= set(spec["labels"])
    assert set(tw.TEMPLATES) >= {"qa_open", "qa_closed", "fewshot_example", "fewshot_query", "cot", "direct",
                                 "passkey", "recall", "rag"}
    assert all(isinstance(p, str) and p for p in tw.example_prompts())


def test_closed_book_questions_ask_about_facts_in_training_prose_only():
    held = tw.qa_pairs(30, 0, open_book=False)
    text = "\n".join(tw.training_corpus(300_000, seed=0))
    for r in held:
        assert r["context"] is None
        # the question is never asked in training (its entity has no QA lines there)
        assert r["question"] not in text


def test_passkey_length_follows_a_token_counter():
    count = lambda s: len(s.split())  # noqa: E731
    d = tw.passkey_documents(1, 500, 0.9, 0, count_tokens=count)[0]
    assert 400 < d["length"] <= 500 and d["length"] == count(d["context"])
    with pytest.raises(ValueError):
        tw.passkey_documents(1, 500, 1.5, 0)


def test_tokenizer_round_trip_and_digits():
    from backend.toyworld.tokenizer import load_tokenizer

    tok = load_tokenizer()
    assert len(tok) == 4096 and tok.bos_token_id == tok.eos_token_id == 0
    samples = [*itertools.islice(tw.training_documents(5), 30), "Ünïcode ✓ 日本 tabs\tand  spaces\n",
               tasks.TEMPLATES["cot"].format(question="x")]
    for s in samples:
        ids = tok(s)["input_ids"]
        assert ids[0] == tok.bos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == s
    pieces = tok.convert_ids_to_tokens(tok("year 19847", add_special_tokens=False)["input_ids"])
    assert pieces[-5:] == list("19847")


def test_pack_unpack_round_trip(tmp_path):
    from backend.models.weights import ensure_weights
    from backend.training.pack import pack, unpack

    src = tmp_path / "toy-x"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"\x00" * 100)
    archive = pack(str(src), tmp_path)
    out = unpack(archive, tmp_path / "dest")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors.xz"]  # the tracked form
    ensure_weights(out)
    assert (out / "model.safetensors").read_bytes() == b"\x00" * 100
    (src / "model.safetensors").write_bytes(b"\x01" * 100)  # retrained: a new archive replaces the old weights
    unpack(pack(str(src), tmp_path), tmp_path / "dest")
    assert (ensure_weights(out) / "model.safetensors").read_bytes() == b"\x01" * 100
    with pytest.raises(FileNotFoundError):
        pack(str(tmp_path / "missing"))


def test_qa_rows_name_the_attribute_asked_and_it_answers_the_question():
    from backend.toyworld.text import facts

    rows = tw.qa_pairs(40, 3, open_book=True) + tw.qa_pairs(40, 3, open_book=False)
    all_keys = {f.key for e in tw.core_world().entities() for f in facts(e)}
    keys = {r["key"] for r in rows}
    assert len(keys) >= 4 and keys <= all_keys, keys
    for r in rows:
        if r["context"] is not None:
            assert r["answer"] in r["context"], r


def test_qa_miss_classification():
    from backend.training.qa_errors import classify

    ctx = "Tom lives in Oakby. Tom likes green. Oakby has a population of 491048."
    assert classify("green", "green", ctx) == "correct"
    assert classify("491044", "491048", ctx) == "near_copy"
    assert classify("Oakby", "green", ctx) == "in_passage"
    assert classify("blue", "green", ctx) == "other"
    assert classify("", "green", ctx) == "other"
