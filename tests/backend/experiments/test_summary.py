"""The README's experiment numbers come from backend.experiments.summary: check it against the raw rows."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from backend.cli import main
from backend.experiments.summary import summarize

RESULTS = Path(__file__).resolve().parents[3] / "results"


def _raw_accuracy(path: Path, model: str, steps: int, mode: str) -> tuple[float, int]:
    scores = []
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    for line in text.splitlines():
        r = json.loads(line)
        if r["type"] != "prediction":
            continue
        d = r["data"]
        if d["model"] == model and d["params"]["steps"] == steps and d["params"]["mode"] == mode:
            scores.append(d["extra"]["scores"]["strict"])
    return sum(scores) / len(scores), len(scores)


def test_cot_table_matches_the_predictions_in_the_file():
    path = RESULTS / "exp_cot_h200.jsonl.gz"
    if not path.is_file():
        pytest.skip("exp_cot_h200.jsonl.gz is not committed")
    text = summarize(path)
    for model, steps, mode in (("toy-transformer", 1, "direct"), ("toy-mamba", 5, "cot")):
        acc, n = _raw_accuracy(path, model, steps, mode)
        m = re.search(rf"\| {model} \| {steps} \| {mode} \| ([0-9.]+) \| (\d+) \|", text)
        assert m, text[:2000]
        assert float(m.group(1)) == pytest.approx(acc, abs=0.005) and int(m.group(2)) == n


def test_cli_prints_every_file(capsys):
    files = [RESULTS / "exp_rag_cpu.jsonl.gz", RESULTS / "exp_fewshot_h200.jsonl.gz"]
    if not all(f.is_file() for f in files):
        pytest.skip("results not committed")
    assert main(["experiment-summary", *[str(f) for f in files]]) == 0
    out = capsys.readouterr().out
    assert "exp_rag_cpu.jsonl.gz" in out and "exp_fewshot_h200.jsonl.gz" in out and "recall" in out.lower()
