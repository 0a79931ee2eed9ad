"""Statistics a reader can trust (issue 13): library calls on known tables, floors, paired differences, and the
versioned tasks through the runner."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from backend.experiments import stats
from backend.experiments.config import ConfigError, ExperimentConfig, default_config
from backend.experiments.metrics import (
    extract,
    holm,
    mcnemar_pvalue,
    paired_difference,
    wilson_interval,
    within_one,
    word_accuracy,
)
from backend.experiments.plans import build_plan
from backend.experiments.runner import run_experiment
from backend.experiments.tasks import render_prompt
from backend.models.fake import FakeGenerator
from store import RecordWriter

MODELS = ["toy-mamba", "toy-transformer"]


def test_mcnemar_on_a_known_table():
    # 9 items only model A got right, 1 only model B: the exact test is a two-sided binomial test of 1 in 10
    assert mcnemar_pvalue(9, 1) == pytest.approx(0.021484375)
    assert mcnemar_pvalue(9, 1) == pytest.approx(binomtest(1, 10, 0.5).pvalue)
    assert mcnemar_pvalue(5, 5) == 1.0 and mcnemar_pvalue(0, 0) == 1.0
    assert mcnemar_pvalue(30, 10) < 0.01


def test_wilson_is_the_library_interval():
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775327998628893))
    assert wilson_interval(10, 10) == (pytest.approx(0.7224672001371106), 1.0)
    lo, hi = wilson_interval(37, 50)
    assert (lo, hi) == pytest.approx(proportion_confint(37, 50, method="wilson"))
    assert wilson_interval(3.5, 10)[0] < 0.35 < wilson_interval(3.5, 10)[1]  # fractional scores (F1)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_paired_difference_and_holm():
    diff, lo, hi = paired_difference([1, 1, 1, 0] * 50, [0, 1, 0, 0] * 50)
    assert diff == pytest.approx(0.5) and lo > 0.4 and hi < 0.6
    assert paired_difference([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)
    assert holm([0.01, 0.04, 0.5]) == pytest.approx([0.03, 0.08, 0.5])


def test_scores_within_one_and_words():
    assert within_one("9", "10") == 1.0 and within_one("8", "10") == 0.0 and within_one("x", "10") == 0.0
    assert word_accuracy("cat dog owl", "cat dog fox") == pytest.approx(2 / 3)
    assert word_accuracy("cat", "cat dog") == 0.5 and word_accuracy("", "cat") == 0.0
    assert extract("leading_number", " 11.") == "11"


def _preds(acc: dict[str, float], n: int = 200, k: int = 1, seed: int = 0, every: int = 4) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ref = "blick" if i % every else "fep"  # by default 3/4 of the references are "blick"
        for m, p in acc.items():
            s = float(rng.random() < p)
            rows.append({"instance_id": f"k={k}/q={i}", "model": m, "score": s, "extracted": ref, "reference": ref,
                         "params": {"k": k, "query": i}, "output": ref, "prompt": "p",
                         "extra": {"scores": {"acc": s}, "choice_logprobs": {"blick": -1.0, "fep": -2.0}}})
    return pd.DataFrame(rows)


def test_baselines_chance_and_majority():
    t = stats.baseline_table(_preds({"a": 0.5}), ["k"], "acc").set_index("baseline")["value"]
    assert t["chance"] == 0.5 and t["majority"] == 0.75
    recall = pd.DataFrame([{"instance_id": f"q={i}", "model": "m", "score": 0.0, "reference": str(100 + i % 2),
                            "params": {"pairs": 8, "query": i}, "extra": {"scores": {"strict": 0.0}}} for i in range(10)])
    t = stats.baseline_table(recall, ["pairs"], "strict").set_index("baseline")["value"]
    assert t["random listed value"] == 1 / 8 and t["majority"] == 0.5
    direct = pd.DataFrame([{"instance_id": f"q={i}", "model": "m", "score": 0.0, "reference": r,
                            "params": {"steps": 2, "query": i}, "extra": {"scores": {"within1": 0.0}}}
                           for i, r in enumerate(["9", "10", "11", "30"])])
    t = stats.baseline_table(direct, ["steps"], "within1").set_index("baseline")["value"]
    assert t["majority"] == 0.75  # answering 10 is within 1 of 9, 10 and 11


def test_paired_table_holds_only_where_the_interval_excludes_zero():
    preds = pd.concat([_preds({"toy-mamba": 0.5, "toy-mamba2": 0.9, "toy-transformer": 0.9}, k=1),
                       _preds({"toy-mamba": 0.9, "toy-mamba2": 0.9, "toy-transformer": 0.9}, k=2, seed=1)])
    t = stats.paired_table(preds, ["k"], "acc", "toy-transformer")
    assert set(t["reference"]) == {"toy-transformer"} and len(t) == 4 and (t["n"] == 200).all()
    row = t[(t["model"] == "toy-mamba") & (t["k"] == 1)].iloc[0]
    assert row["holds"] and row["diff_high"] < 0 and row["p_holm"] >= row["p_value"]
    assert row["only_reference"] > row["only_model"]
    assert not t[t["k"] == 2]["holds"].any()
    assert stats.reference_model(["toy-mamba", "toy-transformer"]) == "toy-transformer"
    assert stats.reference_model(["a", "b"], {"a": "transformer", "b": "mamba"}) == "a"


def test_config_sweeps_follow_the_task():
    copy = default_config("long-context", MODELS, task="copy")
    assert copy.task == "copy" and list(copy.sweep) == ["words"]
    with pytest.raises(ConfigError, match="--pairs"):
        ExperimentConfig("long-context", MODELS, task="recall", sweep={"length": [128]})
    assert "--words 5,60" in ExperimentConfig("long-context", MODELS, task="copy", sweep={"words": [5, 60]}).to_cli()


def _run(tmp_path, cfg):
    gens = {m: FakeGenerator(m, f) for m, f in zip(MODELS, ["mamba", "transformer"], strict=True)}
    writer = RecordWriter(tmp_path / "r.jsonl")
    out = run_experiment(cfg, gens, writer, meta={})
    return out


@pytest.mark.parametrize("experiment, task, sweep, version", [
    ("fewshot", "arbitrary", {"k": [0, 2]}, 2), ("fewshot", "flipped", {"k": [1]}, 1),
    ("long-context", "passkey", {"length": [200], "depth": [0.5], "keys": [1, 3]}, 2),
    ("long-context", "recall", {"pairs": [4]}, 1), ("long-context", "copy", {"words": [5]}, 1),
    ("cot", "arithmetic", {"steps": [6], "mode": ["direct"]}, 2)])
def test_every_row_records_its_task_version(tmp_path, experiment, task, sweep, version):
    out = _run(tmp_path, ExperimentConfig(experiment, MODELS, n=3, sweep=sweep, task=task))
    assert out.status == "completed"
    from store.records import iter_records

    recs = [r for _, r, _ in iter_records(tmp_path / "r.jsonl") if r]
    preds = [r["data"] for r in recs if r["type"] == "prediction"]
    meas = [r["data"] for r in recs if r["type"] == "measurement"]
    assert preds and all(p["params"]["task_version"] == version for p in preds)
    assert all(m["extra"]["params"]["task_version"] == version for m in meas if m.get("metric") is None)
    assert all(a["extra"]["task_version"] == version for a in out.aggregates)
    points = {tuple(sorted(a["extra"]["params"])) for a in out.aggregates}
    assert all("distance" not in p and "listed" not in p and "distractors" not in p for p in points)


def test_fewshot_plan_nests_examples_under_one_mapping_per_instance():
    plan = build_plan(ExperimentConfig("fewshot", MODELS, n=6, sweep={"k": [0, 1, 4]}, task="new-labels"))
    by_q: dict[int, list] = {}
    for inst in plan.instances:
        by_q.setdefault(inst.params["query"], []).append(inst)
    assert len(by_q) == 6
    for insts in by_q.values():
        longest = max(insts, key=lambda i: i.params["k"])
        for i in insts:
            assert i.examples == longest.examples[: i.params["k"]] and i.doc == longest.doc
            assert {e["label"] for e in i.examples} <= set(i.doc["choices"]) and i.reference in i.doc["choices"]
    prompt = render_prompt(plan.tasks["fewshot-new-labels"], longest)
    assert prompt.endswith(f"Input: {longest.doc['text']}\nLabel:") and prompt.count("Label:") == 5


def test_science_findings_name_ceilings_floors_and_what_holds():
    from backend.experiments.science import run_findings, version_label

    preds = pd.concat([_preds({"toy-mamba": 1.0, "toy-transformer": 1.0}, k=0, every=2),  # ceiling
                       _preds({"toy-mamba": 0.5, "toy-transformer": 0.5}, k=1, seed=1, every=2),  # at chance
                       _preds({"toy-mamba": 0.0, "toy-transformer": 0.0}, k=2, every=2),  # below chance: systematic
                       _preds({"toy-mamba": 0.2, "toy-transformer": 0.95}, k=4, seed=2, every=2)])  # a difference
    text = "\n".join(run_findings(preds, "experiment-fewshot", {"toy-transformer": "transformer"}))
    assert "At the ceiling (every model >= 0.95): k=0." in text
    assert "At the floor (no model's interval above its floor): k=1 (floor 0.50)" in text
    assert "Below the floor" in text and "k=2 (floor 0.50)" in text
    assert "toy-mamba minus toy-transformer holds in 1 of 4 cells: k=4:" in text
    assert version_label(preds) == "no scored rows"  # params without a task name
    alone = run_findings(preds[preds["model"] == "toy-mamba"], "experiment-fewshot", {})  # no reference model
    assert alone[0] == "- No paired comparison: the run has no reference model (a transformer) beside toy-mamba."
    preds["params"] = [{**p, "task": "fewshot-arbitrary", "task_version": 2} for p in preds["params"]]
    assert version_label(preds) == "fewshot-arbitrary v2"


def test_each_seed_is_compared_with_its_own_transformer():
    """Two training seeds in one run: a seed-1 model's paired difference is taken against the seed-1 transformer
    (here the seed-1 transformer is strong and the seed-0 one weak, so against the wrong one seed 1's Mamba
    would look better than it is)."""
    models = ["ctx-s0-toy-mamba", "ctx-s0-toy-transformer", "ctx-s1-toy-mamba", "ctx-s1-toy-transformer",
              "ctx-s1-toy-transformer-deep", "toy-mamba"]
    refs = stats.references(models)
    assert refs["ctx-s1-toy-mamba"] == "ctx-s1-toy-transformer" and refs["ctx-s0-toy-mamba"] == "ctx-s0-toy-transformer"
    assert refs["ctx-s1-toy-transformer-deep"] == "ctx-s1-toy-transformer"
    assert refs["toy-mamba"] == "ctx-s0-toy-transformer"  # no seed tag: the run's first transformer
    assert stats.seed_of("ctx-s12-toy-mamba") == 12 and stats.seed_of("toy-mamba-small") is None
    assert stats.references(["ctx-s0-a", "ctx-s1-b"], {"ctx-s0-a": "transformer", "ctx-s1-b": "mamba"}) == \
        {"ctx-s0-a": "ctx-s0-a", "ctx-s1-b": "ctx-s0-a"}  # seed 1 has no transformer: the overall one
    preds = _preds({"ctx-s0-toy-mamba": 0.6, "ctx-s0-toy-transformer": 0.3, "ctx-s1-toy-mamba": 0.6,
                    "ctx-s1-toy-transformer": 0.95})
    t = stats.paired_table(preds, ["k"], "acc").set_index("model")
    assert t.loc["ctx-s1-toy-mamba", "reference"] == "ctx-s1-toy-transformer"
    assert t.loc["ctx-s1-toy-mamba", "diff_high"] < 0 < t.loc["ctx-s0-toy-mamba", "diff_low"]
    assert "ctx-s0-toy-transformer" not in t.index and "ctx-s1-toy-transformer" not in t.index
    one = stats.paired_table(preds, ["k"], "acc", "ctx-s0-toy-transformer").set_index("model")
    assert one.loc["ctx-s1-toy-mamba", "diff_low"] > 0  # the single-reference comparison the pages used before
