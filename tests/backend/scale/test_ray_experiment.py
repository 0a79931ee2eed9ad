"""Experiments as Ray shards on a two-node cluster of this machine (fake models): shards on both nodes, a worker
killed mid-run (its shard retried; the result complete and identical to one process, no duplicate rows),
a shard that keeps dying (failed with the reason after its retries), cancel and resume."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from backend.experiments.config import default_config
from backend.experiments.ray_runner import run_on_ray
from backend.experiments.runner import run_experiment
from backend.models.manager import ModelManager
from store import RecordWriter, open_store

MODELS = ["toy-mamba", "toy-mamba2", "toy-transformer"]
COLS = ["instance_id", "model", "prompt", "output", "extracted", "score"]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")  # forwarded to every shard with the other SSM_ARENA_* settings


def _cot(n=2):
    cfg = default_config("cot", MODELS)
    cfg.n, cfg.sweep, cfg.max_new_tokens = n, {"steps": [1, 2], "mode": ["direct", "cot"]}, 6
    return cfg


def _preds(st, run_id):
    return st.predictions(run_id=run_id)[COLS].sort_values(COLS[:2]).reset_index(drop=True)


def _aggs(out):
    return sorted((a["model"], a["metric"], str(a["extra"]), a["value"], a["n"], a["ci_low"], a["ci_high"])
                  for a in out.aggregates)


def test_cluster_listens_on_loopback_only(ray_cluster):
    """Every listening socket of the cluster's processes (and of this driver) is on 127.0.0.1."""
    procs = [p for p in psutil.process_iter() if _pgid(p.pid) in ray_cluster["pgids"]] + [psutil.Process()]
    listening = [(p.name(), c.laddr) for p in procs for c in _conns(p) if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 4  # both nodes' raylets and the head's GCS at least
    assert {ip for _, (ip, _) in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _conns(p):
    try:
        return p.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_killed_worker_is_retried_and_the_result_matches_one_process(ray_cluster, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("SSM_ARENA_FAKE_DELAY", "0.08")  # shards run a few seconds, so a kill lands mid-run
    cfg = _cot()
    st = open_store(tmp_path / "ray.duckdb")
    killed: dict[str, int] = {}

    def on_shards(state):
        s = state.get("toy-mamba2", {})
        if not killed and s.get("pid") and 3 <= s["done"] < s["total"]:
            killed["pid"] = s["pid"]
            os.kill(s["pid"], signal.SIGKILL)  # the Ray worker process running that shard

    out = run_on_ray(cfg, st, address=ray_cluster["address"], meta={}, on_shards=on_shards)
    assert killed, "the shard finished before it could be killed; the test did not test a retry"
    assert out.status == "completed" and out.done == out.total == 24, out.summary
    # identical to one process on the same plan: every prediction and every aggregate
    ref_store = open_store(tmp_path / "one.duckdb")
    monkeypatch.setenv("SSM_ARENA_FAKE_DELAY", "0")
    ref = run_experiment(cfg, ModelManager(fake=True).get, ref_store, meta={})
    assert _preds(st, out.run_id).equals(_preds(ref_store, ref.run_id))
    assert _aggs(out) == _aggs(ref) and len(out.aggregates) > 0
    # no duplicate rows: one prediction and one timing row per (instance, model)
    preds = st.predictions(run_id=out.run_id)
    assert len(preds) == 24 and not preds.duplicated(["instance_id", "model"]).any()
    meas = st.measurements(run_ids=[out.run_id])
    timing = meas[meas["metric"].isna()]
    assert len(timing) == 24
    # the killed shard: rows from the dead attempt are kept, the retry (another process) did the rest
    pids = set(timing[timing["model"] == "toy-mamba2"]["extra"].map(lambda e: e["pid"]))
    assert killed["pid"] in pids and len(pids) == 2
    # shards landed on both nodes, and every timing row says where and with how many shards it shared
    assert timing["extra"].map(lambda e: e["node_id"]).nunique() == 2
    assert timing["extra"].map(lambda e: e["shards_sharing"] >= 1 and e["gpu"] is None).all()


def test_a_shard_that_keeps_dying_fails_with_the_reason(ray_cluster, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("SSM_ARENA_SHARD_CRASH", "toy-mamba:1")  # every attempt exits after one instance
    cfg = _cot()
    st = RecordWriter(tmp_path / "r.jsonl")
    out = run_on_ray(cfg, st, address=ray_cluster["address"], meta={}, max_retries=1)
    assert out.status == "failed"
    assert "shard toy-mamba" in out.error and "died 2 time(s)" in out.error
    shards = out.summary["shards"]
    assert shards["toy-mamba"]["status"] == "failed" and shards["toy-mamba2"]["status"] == "completed"
    # each of the two attempts delivered its one instance; the second skipped the first's
    assert len(st.done_instances(out.run_id, "toy-mamba")) == 2 == out.summary["shards"]["toy-mamba"]["done"]
    assert len(st.done_instances(out.run_id, "toy-transformer")) == 8


def test_cancel_then_resume(ray_cluster, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("SSM_ARENA_FAKE_DELAY", "0.05")
    cfg = _cot()
    cfg.models = MODELS[:2]
    st = open_store(tmp_path / "c.duckdb")
    seen = {"done": 0}

    def progress(done, total, msg):
        seen["done"] = done

    first = run_on_ray(cfg, st, address=ray_cluster["address"], meta={}, shard_by="point", progress=progress,
                       should_stop=lambda: seen["done"] >= 4)
    assert first.status == "cancelled" and 4 <= first.done < first.total == 16
    kept = sum(len(st.done_instances(first.run_id, m)) for m in MODELS[:2])
    assert kept == first.done
    second = run_on_ray(cfg, st, address=ray_cluster["address"], resume_run_id=first.run_id, shard_by="point")
    assert second.status == "completed" and second.done == second.total == 16
    preds = st.predictions(run_id=first.run_id)
    assert len(preds) == 16 and not preds.duplicated(["instance_id", "model"]).any()
    assert len(second.summary["shards"]) == 8  # 2 models x 4 sweep points (steps x mode)
