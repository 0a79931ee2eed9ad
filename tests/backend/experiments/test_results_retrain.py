"""docs/results.md's issue-14 section: emergence probe tables from train14 records."""

from __future__ import annotations

import json

from backend.experiments.results_retrain import probe_table


def _write(path, long_every=None, correct=(1, 60)):
    cfg = {"seed": 3, "long_seq_len": 8192, "long_frac": 0.2, **({"long_every": long_every} if long_every else {})}
    recs = [{"type": "run", "run_id": "r1", "kind": "train", "name": "toy models", "config": cfg,
             "meta": {"device_name": "NVIDIA H100", "git_sha": "abcdef123"}}]
    for step, c in zip((10, 20), correct, strict=True):
        for model, chance in (("toy-hybrid", 0.5), ("toy-mamba", 0.5)):
            got = c if model == "toy-hybrid" else 33  # 33/64 is chance for the other model
            recs.append({"type": "measurement", "run_id": "r1", "data": {
                "metric": "probe:fewshot-new-k8", "model": model, "seed": 3, "step": step, "tokens": step * 1_000_000,
                "task": "fewshot-new-k8", "value": round(got / 64, 4), "correct": got, "n": 64, "chance": chance}})
    recs.append({"type": "measurement", "run_id": "r1", "data": {"metric": "final_loss", "model": "toy-hybrid"}})
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def test_probe_table_lists_every_point_and_bolds_only_what_beats_chance(tmp_path):
    text = probe_table(_write(tmp_path / "train14_x.jsonl"))
    assert "seed 3" in text and "every step on 8,192-token windows" in text and "10.0M, 20.0M tokens" in text
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| toy-")}
    assert "0.02 → **0.94**" in rows["toy-hybrid"]
    assert "**" not in rows["toy-mamba"] and "0.52 → 0.52" in rows["toy-mamba"]
    assert "chance 0.50" in text


def test_probe_table_names_the_alternating_long_phase_and_skips_runs_without_probes(tmp_path):
    text = probe_table(_write(tmp_path / "a.jsonl", long_every=2))
    assert "every 2nd step" in text
    (tmp_path / "b.jsonl").write_text(json.dumps({"type": "run", "run_id": "r", "kind": "train"}) + "\n")
    assert probe_table(tmp_path / "b.jsonl") == ""
