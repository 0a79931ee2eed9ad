"""Evaluation of a trained checkpoint as a Ray shard (the bundled toy-mamba, perplexity only, on CPU): the
checkpoint travels through Ray's object store, the records come back stamped and equal to one process's."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.scale.evals import run_evals_on_ray
from backend.training import eval_suite
from store.records import iter_records

FOLDER = Path(__file__).resolve().parents[3] / "assets" / "models" / "toy-mamba"


def _records(path):
    return [rec for _, rec, _ in iter_records(path) if rec]


def test_a_checkpoint_is_evaluated_on_the_cluster(ray_cluster, tmp_path):
    errors = run_evals_on_ray([FOLDER], tmp_path, "cpu", timeout_s=600, quick=True, device="cpu",
                              address=ray_cluster["address"], tasks="perplexity")
    assert errors == {}
    recs = _records(tmp_path / "eval_cpu.jsonl")
    (run,) = [r for r in recs if r["type"] == "run"]
    assert run["config"]["folder"] == str(FOLDER)  # the driver's folder, not the node-local copy
    assert [r["status"] for r in recs if r["type"] == "run_end"] == ["completed"]
    (m,) = [r["data"] for r in recs if r["type"] == "measurement"]
    assert m["task"] == "perplexity" and m["node_id"] and m["shards_sharing"] == 1 and m["gpu"] is None
    eval_suite.run(argparse.Namespace(folders=[str(FOLDER)], out=str(tmp_path / "one.jsonl"), device="cpu",
                                      quick=True, tasks="perplexity", max_batch_tokens=16384))
    (ref,) = [r["data"] for r in _records(tmp_path / "one.jsonl") if r["type"] == "measurement"]
    assert (m["value"], m["n"], m["tokens"]) == (ref["value"], ref["n"], ref["tokens"])
    assert "toy-mamba: 1 records" not in (tmp_path / "eval_log.txt").read_text()
    assert "==== toy-mamba: 3 records from node 127.0.0.1" in (tmp_path / "eval_log.txt").read_text()
