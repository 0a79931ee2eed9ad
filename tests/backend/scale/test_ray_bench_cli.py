"""The benchmark's Ray shards (tiny random-weight models on CPU), the command lines with --ray, and the
sentence a machine without Ray gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.bench.ray_sweep import run_sweep_on_ray
from backend.bench.sweep import SweepConfig, run_sweep
from backend.scale import cluster
from store import RecordWriter, open_store
from store.records import iter_records
from tests.backend.bench.test_sweep import TINY  # the same two tiny shapes as the one-process sweep tests

ROOT = Path(__file__).resolve().parents[3]


def _cfg():
    return SweepConfig(models=list(TINY), prompt_lens=[16, 32], new_tokens=[4], long_from=64, batches=[1, 2],
                       batch_prompt_len=16, batch_new_tokens=4, repeats=1, warmup=0, hf_baseline=False,
                       eager_baseline=False, device="cpu")


def _points(rows):
    return sorted((r["model"], r["metric"], r["phase"], r["batch"], r["prompt_tokens"], r["new_tokens"], r["status"])
                  for r in rows)


def test_bench_shards_measure_what_one_process_measures(ray_cluster, tmp_path):
    run_id, rows = run_sweep_on_ray(_cfg(), RecordWriter(tmp_path / "ray.jsonl"), address=ray_cluster["address"],
                                    shapes=TINY)
    _, ref = run_sweep(_cfg(), RecordWriter(tmp_path / "one.jsonl"), shapes=TINY)
    assert _points(rows) == _points(ref) and all(r["status"] == "ok" for r in rows)
    points = [r for r in rows if r["metric"] == "point"]
    assert all(r["prefill_ms"] > 0 and r["shards_sharing"] >= 1 and r["gpu"] is None for r in points)
    assert len({r["node_id"] for r in rows}) == 2  # the two shards were spread over both nodes
    recs = [rec for _, rec, _ in iter_records(tmp_path / "ray.jsonl") if rec]
    assert [r["status"] for r in recs if r["type"] == "run_end"] == ["completed"]
    ids = [r["measurement_id"] for r in recs if r["type"] == "measurement"]
    assert len(ids) == len(set(ids)) == len(rows)
    assert all(r["run_id"] == run_id for r in recs)


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what a machine without the optional extra has
    with pytest.raises(cluster.ClusterError, match=r"pip install ray==") as e:
        cluster.connect("127.0.0.1:1")
    assert str(e.value).endswith(".")


def test_experiment_command_line_with_ray(ray_cluster, tmp_path):
    env = {**os.environ, "SSM_ARENA_FAKE": "1", "SSM_ARENA_DB": str(tmp_path / "cli.duckdb")}
    cmd = [sys.executable, "-m", "backend", "experiment", "cot", "--models", "toy-mamba,toy-transformer", "--n", "1",
           "--steps", "1,2", "--modes", "direct", "--max-new-tokens", "4", "--quiet", "--ray", ray_cluster["address"],
           "--shard-by", "point"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["status"] == "completed" and last["done"] == last["total"] == 4
    st = open_store(tmp_path / "cli.duckdb")
    runs = st.runs()
    assert runs.iloc[0]["meta"]["ray"]["shards"] == 4 and runs.iloc[0]["summary"]["done"] == 4
    # one CPU per shard: no two shards ran on one node's single CPU at once (Ray lends a CPU to other tasks
    # while a task blocks in ray.get; the shards never do)
    timing = st.measurements(run_ids=[runs.iloc[0]["run_id"]])
    assert timing[timing["metric"].isna()]["extra"].map(lambda e: e["shards_sharing"]).eq(1).all()


def test_experiment_on_a_local_cluster_of_this_machine(tmp_path):
    """`--ray` without an address: a one-machine cluster that the command starts and stops itself."""
    env = {**os.environ, "SSM_ARENA_FAKE": "1", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    out = tmp_path / "local.jsonl"
    cmd = [sys.executable, "-m", "backend", "experiment", "fewshot", "--models", "toy-mamba,toy-transformer", "--n",
           "2", "--ks", "0,1", "--quiet", "--jsonl", str(out), "--ray"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["done"] == 8
    (run,) = [rec for _, rec, _ in iter_records(out) if rec and rec["type"] == "run"]
    assert run["meta"]["ray"]["address"] == "local" and run["meta"]["ray"]["nodes"] == 1
    nodes = {rec["data"]["extra"]["node_ip"] for _, rec, _ in iter_records(out)
             if rec and rec["type"] == "measurement" and rec["data"].get("metric") is None}
    assert nodes == {"127.0.0.1"}  # the local cluster stays on loopback


def test_a_bench_shard_that_keeps_crashing_gets_an_error_row(ray_cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("SSM_ARENA_BENCH_CRASH_AT", "tiny-mamba:batch:2:16")  # every attempt dies there
    run_id, rows = run_sweep_on_ray(_cfg(), RecordWriter(tmp_path / "crash.jsonl"), address=ray_cluster["address"],
                                    shapes=TINY, max_retries=1)
    neox = [r for r in rows if r["model"] == "tiny-neox"]
    assert neox and all(r["status"] == "ok" for r in neox)
    (err,) = [r for r in rows if r["model"] == "tiny-mamba"]  # the dead attempts delivered nothing twice
    assert err["status"] == "error" and "died 2 time(s)" in err["error"]
    recs = [rec for _, rec, _ in iter_records(tmp_path / "crash.jsonl") if rec]
    (end,) = [r for r in recs if r["type"] == "run_end"]
    assert end["status"] == "completed" and any("tiny-mamba: all points" in n for n in end["summary"]["not_run"])


def test_ctrl_c_stops_the_shards_and_resume_finishes(ray_cluster, tmp_path):
    db = tmp_path / "sigint.duckdb"
    env = {**os.environ, "SSM_ARENA_FAKE": "1", "SSM_ARENA_FAKE_DELAY": "0.1", "SSM_ARENA_DB": str(db)}
    base = [sys.executable, "-m", "backend", "experiment", "cot", "--quiet", "--ray", ray_cluster["address"]]
    cmd = base + ["--models", "toy-mamba,toy-transformer", "--n", "2", "--steps", "1,2", "--max-new-tokens", "6"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None:
        if db.exists() and len(open_store(db).predictions()) >= 2:
            break
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)  # one Ctrl-C: stop after the current instance
    out, err = p.communicate(timeout=180)
    last = json.loads(out.strip().splitlines()[-1])
    assert p.returncode == 1 and last["status"] == "cancelled" and 2 <= last["done"] < last["total"] == 16, err[-2000:]
    assert open_store(db).runs().iloc[0]["status"] == "cancelled"
    done = subprocess.run(base + ["--resume", last["run_id"]], cwd=ROOT, env={**env, "SSM_ARENA_FAKE_DELAY": "0"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["done"] == 16
    preds = open_store(db).predictions(run_id=last["run_id"])
    assert len(preds) == 16 and not preds.duplicated(["instance_id", "model"]).any()
