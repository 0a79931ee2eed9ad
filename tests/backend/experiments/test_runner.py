"""The experiment runner end to end on the fake backend: records, determinism, cancel and resume."""

from __future__ import annotations

import hashlib

import pytest

from backend.experiments.config import ExperimentConfig, default_config
from backend.experiments.plans import build_plan
from backend.experiments.registry import Plan, fewshot_plan, register_task
from backend.experiments.runner import run_experiment
from backend.experiments.tasks import Instance, TaskSpec, render_prompt
from backend.generation.interface import GenerationResult, Generator, GenMetrics, ModelInfo
from backend.models.fake import FakeGenerator
from store import RecordWriter, open_store

MODELS = ["toy-mamba", "toy-transformer"]


@pytest.fixture
def gens():
    return {"toy-mamba": FakeGenerator("toy-mamba", "mamba"),
            "toy-transformer": FakeGenerator("toy-transformer", "transformer")}


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "exp.duckdb")


class EchoGenerator(Generator):
    """Answers every prompt with a fixed text and prefers a fixed choice: makes scores predictable."""

    def __init__(self, name: str, text: str, prefer: str = "") -> None:
        super().__init__()
        self.text, self.prefer, self.calls = text, prefer, 0
        self.info = ModelInfo(name=name, family="transformer", n_params=1, dtype="float32", device="cpu",
                              max_context=None, path="echo")

    def stream(self, prompt, settings, should_stop=None):
        self.calls += 1
        m = GenMetrics(prompt_tokens=len(prompt.split()), new_tokens=1, ttft_ms=1.0, prefill_ms=1.0, tpot_ms=None,
                       tpot_p90_ms=None, decode_tok_s=None, total_ms=1.0, peak_mem_bytes=0, peak_mem_kind="cpu_rss",
                       cache_bytes=10, cache_kind="kv", path="echo", device="cpu", dtype="float32")
        yield GenerationResult(self.info.name, "transformer", prompt, self.text, [1], "length", m, settings)

    def loglikelihood(self, requests):
        return [(0.0 if cont.strip() == self.prefer else -5.0, False) for _, cont in requests]

    def count_tokens(self, text):
        return len(text.split())


TINY = TaskSpec(name="tiny-add", template="Q: {question}\nA:", target=" {answer}\n", fewshot_delimiter="",
                extract={"strict": "answer_is", "flexible": "last_number"}, primary="strict", stop=["\n\n"])


def tiny_plan(config: ExperimentConfig, count_tokens=None) -> Plan:
    pool = [{"question": f"{a}+{a}", "answer": str(2 * a)} for a in range(30)]
    return fewshot_plan(config, TINY, pool)


register_task("fewshot", "tiny-add", tiny_plan)


@pytest.mark.parametrize("experiment", ["fewshot", "long-context", "cot"])
def test_each_experiment_end_to_end_on_fake(experiment, gens, store):
    cfg = default_config(experiment, MODELS)
    cfg.n = 2
    if experiment == "long-context":
        cfg.sweep = {"length": [128, 256, 4096], "depth": [0.0, 1.0]}  # 4096: beyond the fake transformer's 2048
    seen = []
    out = run_experiment(cfg, gens, store, progress=lambda d, t, m: seen.append((d, t)))
    assert out.status == "completed" and out.done == out.total == len(build_plan(cfg).instances) * 2
    assert seen[-1] == (out.total, out.total)
    run = store.runs().iloc[0]
    assert run["kind"] == f"experiment-{experiment}" and run["status"] == "completed"
    assert ExperimentConfig.from_dict(run["config"]) == cfg
    assert run["meta"]["models"] == MODELS and "git_sha" in run["meta"]
    preds = store.predictions(run_id=out.run_id)
    assert len(preds) == out.total
    assert set(preds.columns) >= {"prompt", "output", "extracted", "reference", "score", "params"}
    # the same prompt for every model (fairness)
    by_inst = preds.groupby("instance_id")["prompt"].nunique()
    assert (by_inst == 1).all()
    meas = store.measurements(run_ids=[out.run_id])
    per_instance = meas[meas["metric"].isna()]
    aggs = meas[meas["metric"].notna()]
    assert len(per_instance) == out.total and per_instance["total_ms"].notna().all()
    assert (aggs["n"] > 0).all() and ((aggs["ci_low"] <= aggs["value"]) & (aggs["value"] <= aggs["ci_high"])).all()
    if experiment == "long-context":
        too_long = preds[preds["params"].map(lambda p: p["length"] == 4096) & (preds["model"] == "toy-transformer")]
        assert too_long["score"].isna().all()  # recorded with its error, not scored as wrong
        assert too_long["extra"].map(lambda e: "positions" in e["error"]).all()
        ssm = per_instance[per_instance["model"] == "toy-mamba"]
        assert ssm["cache_bytes"].nunique() == 1  # SSM state does not grow with context
        # long prompts are stored head + tail, with the length and hash of the full prompt
        plan = build_plan(cfg, count_tokens=gens["toy-mamba"].count_tokens)
        full = {i.id: render_prompt(plan.tasks[i.task], i) for i in plan.instances}
        row = preds[preds["instance_id"].str.startswith("length=4096")].iloc[0]
        assert "characters left out" in row["prompt"] and len(row["prompt"]) < 3200
        assert row["extra"]["prompt_chars"] == len(full[row["instance_id"]])
        assert row["extra"]["prompt_sha256"] == hashlib.sha256(full[row["instance_id"]].encode()).hexdigest()
        short = preds[preds["instance_id"].str.startswith("length=128")].iloc[0]
        assert short["prompt"] == full[short["instance_id"]]
    if experiment == "fewshot":
        assert preds["params"].map(lambda p: p["k"]).max() == max(cfg.sweep["k"])


def test_scores_follow_the_extraction_rules(store):
    right = EchoGenerator("right", " 2+2 is 4.\nThe answer is 4.\n\nQ: 9")
    wrong = EchoGenerator("wrong", " it is 4")
    cfg = ExperimentConfig("fewshot", ["right", "wrong"], n=1, sweep={"k": [0]}, task="tiny-add")
    plan = tiny_plan(cfg)
    plan.instances = [Instance("only", {"question": "2+2", "answer": "4"}, "4", {"k": 0}, [], TINY.name)]
    out = run_experiment(cfg, {"right": right, "wrong": wrong}, store, plan=plan, meta={})
    p = store.predictions(run_id=out.run_id).set_index("model")
    assert p.loc["right", "score"] == 1.0 and p.loc["right", "extracted"] == "4"
    assert p.loc["wrong", "score"] == 0.0 and p.loc["wrong", "extra"]["scores"] == {"strict": 0.0, "flexible": 1.0}
    aggs = {(a["model"], a["extra"]["filter"]): a["value"] for a in out.aggregates}
    assert aggs == {("right", "strict"): 1.0, ("right", "flexible"): 1.0,
                    ("wrong", "strict"): 0.0, ("wrong", "flexible"): 1.0}


def test_choice_scoring_uses_loglikelihood(store):
    cfg = default_config("fewshot", ["pos"], "quick")
    cfg.n, cfg.sweep, cfg.task = 6, {"k": [0, 2]}, "sentiment"
    out = run_experiment(cfg, {"pos": EchoGenerator("pos", "", prefer="positive")}, store, meta={})
    preds = store.predictions(run_id=out.run_id)
    assert (preds["output"] == "positive").all()
    assert (preds["score"] == (preds["reference"] == "positive").astype(float)).all()


def test_seeded_determinism(gens, tmp_path):
    cfg = default_config("cot", MODELS)
    cfg.n, cfg.sweep["steps"] = 2, [1, 3]
    a = [(i.id, i.doc["question"]) for i in build_plan(cfg).instances]
    assert a == [(i.id, i.doc["question"]) for i in build_plan(cfg).instances]
    other = ExperimentConfig.from_dict({**cfg.to_dict(), "seed": 1})
    assert a != [(i.id, i.doc["question"]) for i in build_plan(other).instances]
    outs = []
    for name in ("one", "two"):
        st = open_store(tmp_path / f"{name}.duckdb")
        r = run_experiment(cfg, gens, st, meta={})
        df = st.predictions(run_id=r.run_id).sort_values(["instance_id", "model"])
        outs.append(df[["instance_id", "model", "prompt", "output", "score"]].reset_index(drop=True))
    assert outs[0].equals(outs[1])


def test_fewshot_examples_are_nested_and_never_the_query():
    cfg = ExperimentConfig("fewshot", ["m"], n=5, sweep={"k": [0, 2, 4]}, task="tiny-add")
    plan = build_plan(cfg)
    by_query = {}
    for inst in plan.instances:
        assert inst.doc not in inst.examples and len(inst.examples) == inst.params["k"]
        by_query.setdefault(inst.params["query"], []).append(inst.examples)
    for ex in by_query.values():
        assert ex[1] == ex[2][:2]  # k=2 examples are the first two of k=4


@pytest.mark.parametrize("backend", ["duckdb", "jsonl"])
def test_cancel_then_resume_redoes_nothing(backend, gens, tmp_path):
    st = open_store(tmp_path / "r.duckdb") if backend == "duckdb" else RecordWriter(tmp_path / "r.jsonl")
    cfg = default_config("cot", MODELS)
    cfg.n, cfg.sweep["steps"] = 2, [1, 2]
    total = len(build_plan(cfg).instances) * 2
    flag = {"stop": False}

    def progress(done, total, msg):
        flag["stop"] = done >= 5

    first = run_experiment(cfg, gens, st, progress=progress, should_stop=lambda: flag["stop"], meta={})
    assert first.status == "cancelled" and first.done == 5
    kept = {m: st.done_instances(first.run_id, m) for m in MODELS}
    assert sum(map(len, kept.values())) == first.done

    calls = {m: 0 for m in MODELS}

    def counting(name):
        g = gens[name]
        inner = g.stream

        def stream(*a, **k):
            calls[name] += 1
            return inner(*a, **k)

        g.stream = stream
        return g

    second = run_experiment(cfg, counting, st, resume_run_id=first.run_id)
    assert second.status == "completed" and second.done == total
    assert sum(calls.values()) == total - first.done  # finished instances were not redone
    assert {a["n"] for a in second.aggregates} == {2}  # aggregates cover both sessions
    if backend == "duckdb":
        preds = st.predictions(run_id=first.run_id)
        assert len(preds) == total and not preds.duplicated(["instance_id", "model"]).any()
        assert st.runs().iloc[0]["status"] == "completed"


def test_interrupt_marks_run_cancelled_and_keeps_rows(gens, store):
    cfg = default_config("fewshot", MODELS)
    cfg.n, cfg.sweep = 3, {"k": [0, 1]}

    def progress(done, total, msg):
        if done == 4:
            raise KeyboardInterrupt  # what Streamlit's stop or Ctrl-C looks like to the runner

    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, gens, store, progress=progress, meta={})
    run = store.runs().iloc[0]
    assert run["status"] == "cancelled" and run["summary"]["done"] == 4
    assert len(store.predictions(run_id=run["run_id"])) == 4


def test_instances_are_query_major_so_early_stops_stay_balanced():
    cfg = default_config("long-context", ["m"])
    cfg.n, cfg.sweep = 3, {"length": [128, 256], "depth": [0.0, 1.0]}
    first_four = build_plan(cfg).instances[:4]
    assert {i.params["query"] for i in first_four} == {0}
    assert {(i.params["length"], i.params["depth"]) for i in first_four} == {(128, 0.0), (128, 1.0), (256, 0.0),
                                                                              (256, 1.0)}


def test_aggregates_sort_numbers_as_numbers(gens, store):
    cfg = default_config("fewshot", ["toy-mamba"])
    cfg.n, cfg.sweep = 1, {"k": [16, 2, 0]}
    out = run_experiment(cfg, gens, store, meta={})
    assert [a["extra"]["params"]["k"] for a in out.aggregates] == [0, 2, 16]


def test_fewshot_samplers_fixed_list_and_first_n():
    import random

    from backend.experiments.tasks import FewShotSpec, TaskError, select_examples

    pool = [{"i": i} for i in range(6)]
    rng = random.Random(0)
    assert select_examples(pool, 2, FewShotSpec(fixed=[4, 1, 3]), rng) == [{"i": 4}, {"i": 1}]
    assert select_examples(pool, 2, FewShotSpec(fixed=[4, 1, 3]), rng, exclude=4) == [{"i": 1}, {"i": 3}]
    assert select_examples(pool, 3, FewShotSpec("first_n"), rng, exclude=0) == [{"i": 1}, {"i": 2}, {"i": 3}]
    seeded = select_examples(pool, 3, FewShotSpec(), random.Random(7), exclude=2)
    assert seeded == select_examples(pool, 3, FewShotSpec(), random.Random(7), exclude=2) and {"i": 2} not in seeded
    with pytest.raises(TaskError, match="outside the pool"):
        select_examples(pool, 1, FewShotSpec(fixed=[9]), rng)
    with pytest.raises(TaskError, match="only 2 are available"):
        select_examples(pool, 3, FewShotSpec(fixed=[0, 1]), rng)
