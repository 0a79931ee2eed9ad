"""The RAG experiment's plan builder and scores (backend.rag) on the experiments framework's runner."""

from __future__ import annotations

from backend.experiments.rag import (
    RETRIEVER_LABEL,
    answer_measurements,
    faithfulness,
    load_rag_plan,
    rag_plan,
    retrieval_measurements,
    save_rag_plan,
)
from backend.rag import closed_book_template, rag_template


def test_plan_runs_through_the_experiment_runner(tmp_path, embedder):
    from backend.experiments.config import ExperimentConfig
    from backend.experiments.runner import run_experiment
    from backend.experiments.tasks import render_prompt
    from backend.models.fake import FakeGenerator
    from backend.toyworld import rag_corpus
    from store import RecordWriter

    # "rag" is not an ExperimentConfig experiment yet; fewshot's sweep key is also "k", so its config
    # carries the sweep while the plan comes from rag_plan
    config = ExperimentConfig(experiment="fewshot", models=["ssm", "tf"], n=6, seed=3, sweep={"k": [3, 0, 1]})
    plan = rag_plan(config, n_entities=30)
    assert len(plan.instances) == 6 * 3 and set(plan.tasks) == {"rag-open", "rag-closed"}
    assert plan.instances[0].id == "k=0/q=0"  # k sorted; ids stable for resume
    docs = {d["doc_id"]: " ".join(d["text"].split()) for d in rag_corpus(seed=3, n_entities=30)["documents"]}
    for inst in plan.instances:
        prompt = render_prompt(plan.tasks[inst.task], inst)
        k = inst.params["k"]
        tail = closed_book_template().format(question=inst.doc["question"])
        assert prompt.endswith(tail) and len(inst.doc["retrieved_doc_ids"]) == k
        if k == 0:
            assert inst.task == "rag-closed" and prompt == tail
        else:
            assert inst.task == "rag-open" and plan.tasks[inst.task].template == rag_template()
            context = inst.doc["context"]  # k passages, one per line, right before the question
            assert prompt.startswith(context) and context.count("\n") == k - 1
            lines, ids = context.split("\n"), inst.doc["context_doc_ids"]
            assert len(ids) == len(set(ids)) == k and ids[inst.params["gold_pos"] - 1] == inst.doc["gold_doc_id"]
            assert lines[inst.params["gold_pos"] - 1] == docs[inst.doc["gold_doc_id"]]  # the gold passage, whole
            assert all(line == docs[d] for line, d in zip(lines, ids, strict=True))  # whole documents
            # the distractors are the retriever's best other documents, in its order
            others = [d for d in dict.fromkeys(inst.doc["retrieved_doc_ids"]) if d != inst.doc["gold_doc_id"]][: k - 1]
            assert [d for d in ids if d != inst.doc["gold_doc_id"]][: len(others)] == others

    save_rag_plan(plan, tmp_path / "plan.jsonl")  # for a GPU machine without faiss
    again = load_rag_plan(tmp_path / "plan.jsonl")
    assert [render_prompt(again.tasks[i.task], i) for i in again.instances] == [
        render_prompt(plan.tasks[i.task], i) for i in plan.instances]
    assert [(i.id, i.params, i.reference) for i in again.instances] == [
        (i.id, i.params, i.reference) for i in plan.instances]

    gens = {"ssm": FakeGenerator("ssm", "mamba"), "tf": FakeGenerator("tf", "transformer")}
    writer = RecordWriter(tmp_path / "rag.jsonl")
    out = run_experiment(config, gens, writer, plan=plan, meta={})
    assert out.status == "completed" and out.done == out.total == 36
    points = {(a["model"], a["extra"]["params"]["k"]) for a in out.aggregates}
    assert points == {(m, k) for m in ("ssm", "tf") for k in (0, 1, 3)}  # accuracy vs k per model

    ret = {(m["metric"], m["extra"]["params"]["k"]): m for m in retrieval_measurements(plan)}
    assert set(ret) == {("recall@k", 1), ("recall@k", 3), ("mrr@k", 1), ("mrr@k", 3)}
    assert ret[("recall@k", 3)]["value"] >= ret[("recall@k", 1)]["value"] >= 0.5
    assert ret[("mrr@k", 1)]["value"] == ret[("recall@k", 1)]["value"]
    assert all(m["model"] == RETRIEVER_LABEL and m["n"] == 6 for m in ret.values())

    preds = [{"instance_id": i.id, "model": "ssm", "score": 1.0, "extracted": i.reference} for i in plan.instances]
    ans = {(m["metric"], m["extra"]["params"]["k"]): m["value"] for m in answer_measurements(plan, preds)}
    assert ans[("token_f1", 0)] == ans[("token_f1", 3)] == 1.0  # perfect answers
    assert ("faithfulness", 0) not in ans  # no context, no faithfulness
    assert ans[("faithfulness", 3)] >= ret[("recall@k", 3)]["value"] - 1e-9  # gold doc retrieved -> answer in it


def test_gold_positions_are_uniform_over_the_passages():
    import random
    from collections import Counter

    from backend.experiments.rag import gold_positions

    for n, k in ((200, 4), (201, 4), (50, 8), (7, 1)):
        pos = gold_positions(n, k, random.Random(0))
        counts = Counter(pos)
        assert len(pos) == n and set(counts) == set(range(1, k + 1))
        assert max(counts.values()) - min(counts.values()) <= 1
    pos = gold_positions(200, 4, random.Random(1))
    assert pos[:50] != [1 + i % 4 for i in range(50)]  # shuffled, not tied to the question order


def test_faithfulness():
    assert faithfulness("Mira Kest", "built by Mira Kest in 1822") == 1.0
    assert faithfulness("Mira Stone", "built by Mira Kest") == 0.5
    assert faithfulness("", "anything") == 0.0
