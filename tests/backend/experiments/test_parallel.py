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


def test_cpu_workers_split_the_cores(monkeypatch):
    """N workers on the CPU get cores // N threads each (at least 1) for OpenMP, MKL and numba; a variable the user
    set is kept; one worker or a GPU keeps the defaults."""
    from backend.experiments.parallel import THREAD_VARS, worker_env

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SSM_ARENA_DEVICE", raising=False)
    for v in THREAD_VARS:
        monkeypatch.delenv(v, raising=False)
    assert worker_env("cpu", 2) == dict.fromkeys(THREAD_VARS, "4")
    assert set(worker_env("cpu", 3).values()) == {"2"} and set(worker_env("cpu", 16).values()) == {"1"}
    assert worker_env("cpu", 1) == {}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in worker_env("cpu", 2)
    monkeypatch.setenv("SSM_ARENA_DEVICE", "cpu")
    assert worker_env(None, 4)["NUMBA_NUM_THREADS"] == "2"  # the worker's device follows the setting
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert worker_env("cuda", 2) == {}


def test_cpu_workers_start_with_their_share_and_the_parent_keeps_its_environment(fake, tmp_path, monkeypatch):
    """The spawned workers see the thread variables (read back from inside a worker); the parent's environment
    is as it was."""
    import os

    from backend.experiments import parallel

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(parallel, "worker_env", lambda device, workers: {"OMP_NUM_THREADS": "1"})
    monkeypatch.setattr(parallel, "_worker", _env_worker)
    cfg = default_config("cot", MODELS)
    cfg.n, cfg.sweep["steps"] = 1, [1]
    out = run_parallel(cfg, RecordWriter(tmp_path / "r.jsonl"), workers=2, meta={})
    assert sorted(out.summary["model_info"].values(), key=str) == [{"omp": "1"}, {"omp": "1"}]
    assert "OMP_NUM_THREADS" not in os.environ


def _env_worker(config_dict, plan, models, run_id, spec, device, workers, q, stop_ev):
    import os

    q.put(("info", f"worker-{models[0]}", {"omp": os.environ.get("OMP_NUM_THREADS")}))
