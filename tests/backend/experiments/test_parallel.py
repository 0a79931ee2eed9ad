"""Worker processes (`--workers N`): same prompts and records as one process; cancel and resume."""

from __future__ import annotations

import pytest

from backend.experiments.config import default_config
from backend.experiments.parallel import run_parallel
from backend.experiments.runner import run_experiment
from backend.models.fake import FakeGenerator
from store import RecordWriter, open_store

MODELS = ["toy-mamba", "toy-mamba2", "toy-transformer"]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")  # spawned workers inherit it


def test_workers_record_what_one_process_records(fake, tmp_path):
    cfg = default_config("cot", MODELS)
    cfg.n, cfg.sweep["steps"] = 2, [1, 2]
    par = open_store(tmp_path / "par.duckdb")
    out = run_parallel(cfg, par, workers=2, meta={})
    assert out.status == "completed" and out.done == out.total == 24
    assert set(out.summary["model_info"]) == set(MODELS)
    seq = open_store(tmp_path / "seq.duckdb")
    gens = {m: FakeGenerator(m, f) for m, f in zip(MODELS, ["mamba", "mamba2", "transformer"], strict=True)}
    ref = run_experiment(cfg, gens, seq, meta={})
    cols = ["instance_id", "model", "prompt", "output", "score"]
    a = par.predictions(run_id=out.run_id)[cols].sort_values(cols[:2]).reset_index(drop=True)
    b = seq.predictions(run_id=ref.run_id)[cols].sort_values(cols[:2]).reset_index(drop=True)
    assert a.equals(b)
    assert sorted(x["extra"]["filter"] for x in out.aggregates) == sorted(x["extra"]["filter"] for x in ref.aggregates)
    timing = par.measurements(run_ids=[out.run_id])
    assert (timing[timing["metric"].isna()]["extra"].map(lambda e: e["workers"]) == 2).all()


def test_cancel_then_resume(fake, tmp_path):
    st = RecordWriter(tmp_path / "r.jsonl")
    cfg = default_config("fewshot", MODELS)
    cfg.n, cfg.sweep = 4, {"k": [0, 1, 2]}
    seen = {"done": 0}

    def progress(done, total, msg):
        seen["done"] = done

    first = run_parallel(cfg, st, workers=3, progress=progress, should_stop=lambda: seen["done"] >= 6, meta={})
    assert first.status == "cancelled" and 6 <= first.done < first.total
    kept = sum(len(st.done_instances(first.run_id, m)) for m in MODELS)
    assert kept == first.done
    second = run_parallel(cfg, st, workers=3, resume_run_id=first.run_id)
    assert second.status == "completed" and second.done == second.total == 36
