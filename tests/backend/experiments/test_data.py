"""User JSONL datasets: schemas, malformed lines reported by file and line, nothing else lost."""

from __future__ import annotations

import json

import pytest

from backend.experiments.config import ExperimentConfig
from backend.experiments.datasets import DatasetError, load_jsonl
from backend.experiments.plans import build_plan


def write(path, lines):
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))
    return path


def test_malformed_lines_are_named_and_the_rest_load(tmp_path):
    f = write(tmp_path / "cls.jsonl", [
        json.dumps({"text": "good soup", "label": "positive"}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"text": "bad soup"}),
        json.dumps({"text": {"nested": 1}, "label": "x"}),
        b"\xff\xfe broken bytes",
        json.dumps({"text": "awful", "label": "negative"}),
        json.dumps({"text": "fine", "label": 1}),  # numbers are accepted as text
    ])
    res = load_jsonl(f, "classification")
    assert [r["_line"] for r in res.records] == [1, 8, 9]
    assert res.records[2]["label"] == "1"
    assert len(res.errors) == 5
    for err, line in zip(res.errors, [2, 3, 5, 6, 7], strict=True):
        assert err.startswith(f"cls.jsonl, line {line}: ")
    assert "missing field 'label'" in res.errors[2]
    assert "not valid JSON" in res.errors[0]
    assert "UTF-8" in res.errors[4]


def test_gsm8k_answers_are_split_into_solution_and_number(tmp_path):
    f = write(tmp_path / "g.jsonl", [
        json.dumps({"question": "q1", "answer": "He has 3+4=<<3+4=7>>7 apples.\nThen 7*2=<<7*2=14>>14.\n#### 14"}),
        json.dumps({"question": "q2", "answer": "1,200"}),
    ])
    a, b = load_jsonl(f, "gsm8k").records
    assert a["answer"] == "14" and a["steps"] == 2 and "<<" not in a["solution"]
    assert b["answer"] == "1,200" and b["steps"] == 0 and b["solution"] == ""


def test_whole_file_problems_raise_a_sentence(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl", "gsm8k")
    bad = write(tmp_path / "bad.jsonl", ["nope", "{}"])
    with pytest.raises(DatasetError, match=r"no usable passkey lines.*bad.jsonl, line 1"):
        load_jsonl(bad, "passkey")
    with pytest.raises(DatasetError, match="Unknown schema"):
        load_jsonl(bad, "csv")


def test_passkey_depth_is_checked(tmp_path):
    f = write(tmp_path / "p.jsonl", [
        json.dumps({"context": "c", "question": "q", "answer": "1", "depth": 2}),
        json.dumps({"context": "c", "question": "q", "answer": "1", "depth": 0.5}),
    ])
    res = load_jsonl(f, "passkey")
    assert len(res.records) == 1 and "depth" in res.errors[0]


def test_user_data_plans(tmp_path):
    cls = write(tmp_path / "c.jsonl", [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(12)]
                + ["oops"])
    plan = build_plan(ExperimentConfig("fewshot", ["m"], n=4, sweep={"k": [0, 2]}, data=str(cls)))
    assert len(plan.instances) == 8 and plan.warnings == ["c.jsonl, line 13: not valid JSON (Expecting value at column 1)"]
    for inst in plan.instances:
        assert inst.doc["choices"] == ["a", "b"] and inst.doc not in inst.examples
    gsm = write(tmp_path / "g.jsonl", [json.dumps({"question": f"q{i}", "answer": "a\n" * (i % 3) + f"#### {i}"})
                                       for i in range(9)])
    plan = build_plan(ExperimentConfig("cot", ["m"], n=2, sweep={"steps": [1, 2], "mode": ["cot"]}, data=str(gsm)))
    assert sorted(i.params["steps"] for i in plan.instances) == [1, 1, 2, 2]
    pk = write(tmp_path / "p.jsonl", [json.dumps({"context": "c", "question": "q", "answer": "7"})])
    plan = build_plan(ExperimentConfig("long-context", ["m"], n=5, data=str(pk)))
    assert [i.reference for i in plan.instances] == ["7"]
