"""`python -m backend evaluate` stamps its run like every other: commit, versions, device and the path it ran
(the bundled toy-mamba, perplexity only, quick sizes, on CPU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.training import eval_suite
from store.records import iter_records

FOLDER = Path(__file__).resolve().parents[3] / "assets" / "models" / "toy-mamba"


def test_an_evaluation_run_records_commit_versions_and_path(tmp_path):
    out = tmp_path / "eval.jsonl"
    assert eval_suite.run(argparse.Namespace(folders=[str(FOLDER)], out=str(out), device="cpu", quick=True,
                                             tasks="perplexity", max_batch_tokens=16384)) == 0
    recs = [rec for _, rec, _ in iter_records(out) if rec]
    (run,) = [r for r in recs if r["type"] == "run"]
    meta = run["meta"]
    assert run["kind"] == "toyworld_eval" and meta["device"] == "cpu" and meta["path"]
    assert meta["git_sha"] and meta["torch"] and meta["transformers"] and meta["python"]
    (m,) = [r["data"] for r in recs if r["type"] == "measurement"]
    assert m["task"] == "perplexity" and m["path"] == meta["path"] and m["value"] > 1
