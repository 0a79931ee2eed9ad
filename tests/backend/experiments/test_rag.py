"""The RAG experiment on the experiments framework: config, run, stored measurements, resume, CLI, a tiny model.

The plan retrieves with the real embedder (all-MiniLM-L6-v2, loaded once per process) over a throw-away
index of toy-world documents; answers come from fake generators or tiny random-weight models.
"""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest

import backend.experiments.rag
from backend.cli import experiment as cmd
from backend.experiments.config import PROFILES, ConfigError, ExperimentConfig, default_config
from backend.experiments.plans import build_plan
from backend.experiments.rag import RETRIEVER_LABEL, save_rag_plan
from backend.experiments.runner import run_experiment
from backend.models.fake import FakeGenerator
from store import RecordWriter, open_store
from tests.backend.cli_helpers import parser, run_cli

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

MODELS = ["toy-mamba", "toy-transformer"]


def fakes() -> dict:
    return {"toy-mamba": FakeGenerator("toy-mamba", "mamba"), "toy-transformer": FakeGenerator("toy-transformer",
                                                                                             "transformer")}


def check_measurements(meas, models, ks, n):
    """Every RAG measurement a completed run stores, each with n and a 95% interval around its value."""
    rows = meas[meas["metric"].notna()]
    by, per_position = {}, {}
    for _, r in rows.iterrows():
        params = r["extra"].get("params") or {}
        if r["metric"].startswith("accuracy[") and params.get("gold_pos"):  # one row per gold position
            per_position.setdefault((r["model"], r["metric"], params["k"]), []).append(r)
            continue
        by[(r["model"], r["metric"], params.get("k"))] = r
    for (model, metric, k), parts in per_position.items():
        assert sorted(int(r["extra"]["params"]["gold_pos"]) for r in parts) == list(range(1, k + 1))[:n]
        assert sum(int(r["n"]) for r in parts) == n
        total = sum(r["value"] * r["n"] for r in parts)
        by[(model, metric, k)] = pd.Series({"n": n, "value": total / n, "ci_low": 0.0, "ci_high": 1.0})
    for m in models:
        for k in ks:
            assert (m, "accuracy[strict]", k) in by and (m, "token_f1", k) in by  # EM and F1, closed and open
            if k:
                assert (m, "faithfulness", k) in by
    for k in ks:
        if k:
            assert (RETRIEVER_LABEL, "recall@k", k) in by and (RETRIEVER_LABEL, "mrr@k", k) in by
    for r in by.values():
        assert r["n"] == n and 0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1, r.to_dict()
    recall = [by[(RETRIEVER_LABEL, "recall@k", k)]["value"] for k in sorted(ks) if k]
    assert recall == sorted(recall) and recall[-1] >= 0.5  # recall grows with k


def test_config_profiles_and_command_line():
    quick = default_config("rag", MODELS)
    assert quick.task == "toy-rag" and quick.kind == "experiment-rag"
    assert quick.sweep == {"k": [0, 1, 2, 4]} and quick.n == 12
    assert PROFILES["full"]["rag"]["sweep"]["k"] == [0, 1, 2, 4, 8] and PROFILES["full"]["rag"]["n"] == 200
    with pytest.raises(ConfigError, match="sweeps k"):
        ExperimentConfig("rag", MODELS, sweep={"length": [128]})
    for cfg in (quick, ExperimentConfig("rag", MODELS, n=5, sweep={"k": [0, 3]}, data="plans/rag plan.jsonl")):
        argv = shlex.split(cfg.to_cli())
        assert cmd.config_from_args(parser().parse_args(argv[3:])) == cfg
    assert "--plan 'plans/rag plan.jsonl'" in ExperimentConfig("rag", MODELS, data="plans/rag plan.jsonl").to_cli()


def test_end_to_end_on_fake_generators_stores_the_measurements(tmp_path):
    st = open_store(tmp_path / "a.duckdb")
    cfg = ExperimentConfig("rag", MODELS, n=4, sweep={"k": [0, 1, 3]}, task="toy-rag")
    out = run_experiment(cfg, fakes(), st, meta={})
    assert out.status == "completed" and out.done == out.total == 4 * 3 * 2
    preds = st.predictions(run_id=out.run_id)
    assert set(preds["params"].map(lambda p: p["task"])) == {"rag-open", "rag-closed"}
    closed = preds[preds["params"].map(lambda p: p["k"] == 0)]
    assert closed["prompt"].str.startswith("Question: ").all()  # k = 0 is closed-book
    check_measurements(st.measurements(run_ids=[out.run_id]), MODELS, [0, 1, 3], 4)


def test_cancel_then_resume_completes_with_every_measurement(tmp_path):
    st = open_store(tmp_path / "a.duckdb")
    cfg = ExperimentConfig("rag", MODELS, n=3, sweep={"k": [0, 2]}, task="toy-rag")
    done = {"n": 0}

    def progress(n, total, msg):
        done["n"] = n

    first = run_experiment(cfg, fakes(), st, progress=progress, should_stop=lambda: done["n"] >= 5, meta={})
    assert first.status == "cancelled" and first.done == 5
    assert st.measurements(run_ids=[first.run_id])["metric"].notna().sum() == 0  # nothing aggregated yet
    again = run_experiment(cfg, fakes(), st, resume_run_id=first.run_id)
    assert again.status == "completed" and again.run_id == first.run_id and again.done == again.total == 12
    preds = st.predictions(run_id=first.run_id)
    assert len(preds) == 12 and not preds.duplicated(["instance_id", "model"]).any()
    check_measurements(st.measurements(run_ids=[first.run_id]), MODELS, [0, 2], 3)


def test_cli_saved_plan_runs_without_retrieval_into_jsonl(tmp_path, capsys, monkeypatch):
    """--save-plan retrieves here; --plan runs exactly those contexts (as on a GPU machine without faiss)."""
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    plan_file = tmp_path / "rag_plan.jsonl"
    rc, out, err = run_cli(["experiment", "rag", "--n", "3", "--ks", "0,1,2", "--save-plan", str(plan_file)], capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["instances"] == 9 and plan_file.is_file()

    def no_retrieval(*a, **k):
        raise AssertionError("a saved plan must not retrieve again")

    monkeypatch.setattr(backend.experiments.rag, "rag_plan", no_retrieval)
    results = tmp_path / "exp_rag.jsonl"
    rc, out, err = run_cli(["experiment", "rag", "--plan", str(plan_file), "--ks", "0,2", "--models",
                            ",".join(MODELS), "--jsonl", str(results), "--quiet"], capsys)
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["total"] == 3 * 2 * 2  # n from the file, k cut to 0,2
    assert "recall@k" in out and "faithfulness" in out  # the printed table has the RAG measurements
    assert "--plan" in err  # the echoed equivalent command
    st = open_store(tmp_path / "a.duckdb")
    st.import_jsonl(results)
    run = st.runs().iloc[0]
    assert run["kind"] == "experiment-rag" and run["config"]["data"] == str(plan_file)
    check_measurements(st.measurements(run_ids=[run["run_id"]]), MODELS, [0, 2], 3)


def test_cli_refuses_plans_elsewhere_and_data_for_rag(tmp_path, capsys):
    rc, _, err = run_cli(["experiment", "fewshot", "--plan", "x.jsonl", "--quiet"], capsys)
    assert rc == 2 and "rag experiment only" in err
    rc, _, err = run_cli(["experiment", "rag", "--data", "x.jsonl", "--quiet"], capsys)
    assert rc == 2 and "--plan" in err
    rc, _, err = run_cli(["experiment", "rag", "--plan", str(tmp_path / "missing.jsonl"), "--quiet"], capsys)
    assert rc == 2 and "no plan file" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{\"not\": \"a plan\"}\n")
    rc, _, err = run_cli(["experiment", "rag", "--plan", str(bad), "--quiet"], capsys)
    assert rc == 2 and "not a RAG plan file" in err


def test_jsonl_writer_resume(tmp_path):
    """The GPU path: a RecordWriter run that is cancelled and resumed from the same file."""
    w = RecordWriter(tmp_path / "r.jsonl")
    cfg = ExperimentConfig("rag", MODELS, n=2, sweep={"k": [0, 1]}, task="toy-rag")
    plan = build_plan(cfg)
    done = {"n": 0}

    def progress(n, total, msg):
        done["n"] = n

    first = run_experiment(cfg, fakes(), w, plan=plan, progress=progress, should_stop=lambda: done["n"] >= 3,
                           meta={})
    again = run_experiment(cfg, fakes(), w, plan=plan, resume_run_id=first.run_id)
    assert again.status == "completed" and again.done == 8
    assert {a["metric"] for a in again.aggregates} == {"accuracy[strict]", "accuracy[flexible]"}
    metrics = {a["metric"] for a in again.aggregates + again.measurements}
    assert {"accuracy[strict]", "recall@k", "mrr@k", "token_f1", "faithfulness"} <= metrics


def test_tiny_real_models(tiny_dirs, tmp_path):
    from backend.models import registry
    from backend.models.manager import ModelManager

    names = [registry.add_local_model(tiny_dirs[a], name=f"tiny-{a}").name for a in ("mamba", "llama")]
    st = open_store(tmp_path / "t.duckdb")
    cfg = ExperimentConfig("rag", names, n=2, sweep={"k": [0, 2]}, task="toy-rag", max_new_tokens=4)
    out = run_experiment(cfg, ModelManager(fake=False).get, st)
    assert out.status == "completed" and out.done == out.total == 8
    preds = st.predictions(run_id=out.run_id)
    assert preds["score"].notna().all()  # prompts fit: nothing beyond a model's limit
    inst = st.measurements(run_ids=[out.run_id])
    assert (inst[inst["metric"].isna()]["prompt_tokens"] > 0).all()
    check_measurements(inst, names, [0, 2], 2)


def test_a_saved_plan_runs_without_faiss_sentence_transformers_or_duckdb(tmp_path):
    """The GPU image has none of them: --plan plus --jsonl must not import any."""
    import os
    import subprocess
    import sys

    plan_file, out_file = tmp_path / "plan.jsonl", tmp_path / "out.jsonl"
    save_rag_plan(build_plan(ExperimentConfig("rag", MODELS, n=2, sweep={"k": [0, 1]}, task="toy-rag")), plan_file)
    code = ("import sys\n"
            "for m in ('faiss', 'sentence_transformers', 'duckdb'): sys.modules[m] = None\n"
            "from backend.cli import main\n"
            f"sys.exit(main(['experiment', 'rag', '--plan', {str(plan_file)!r}, '--models', 'toy-mamba,toy-transformer',"
            f" '--jsonl', {str(out_file)!r}, '--quiet']))\n")
    env = {**os.environ, "SSM_ARENA_FAKE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "completed"
    kinds = [json.loads(line)["data"].get("metric") for line in out_file.read_text().splitlines()
             if json.loads(line)["type"] == "measurement"]
    assert {"recall@k", "mrr@k", "token_f1", "faithfulness", "accuracy[strict]"} <= set(kinds)
