"""Model cards are written from the records: numbers in the card are the records' numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.training.model_card import read_records, targets, write_cards

ROOT = Path(__file__).resolve().parents[3]
RESULTS, ERRORS = ROOT / "results" / "train_h200.jsonl", ROOT / "results" / "qa_open_errors_cpu.jsonl"


@pytest.fixture
def models(tmp_path):
    if not RESULTS.is_file():
        pytest.skip("results/train_h200.jsonl is not committed")
    for name in ("toy-mamba", "toy-mamba2", "toy-transformer"):
        (tmp_path / name).mkdir()
        shutil.copy(ROOT / "assets" / "models" / name / "train_summary.json", tmp_path / name)
    return tmp_path


def test_cards_carry_the_recorded_numbers_and_targets(models):
    paths = write_cards(RESULTS, models, errors_path=ERRORS)
    train, evals = read_records(RESULTS)
    for path in paths:
        text = path.read_text()
        name = path.parent.name
        s = next(t for t in train if t["model"] == name)
        assert f"{s['tokens_seen']:,}" in text and str(s["final_loss"]) in text and s["train_path"] in text
        qa = next(r for r in evals if r["model"] == name and r["task"] == "qa_open")
        assert f"{qa['value']:.3f} [{qa['ci_low']:.3f}, {qa['ci_high']:.3f}]" in text
        for line in targets(evals):
            assert line in text
        assert "--out assets/models" in text and ".gpu/models" not in text


def test_why_section_uses_the_error_records(models):
    errs = [json.loads(x)["data"] for x in ERRORS.read_text().splitlines() if json.loads(x)["type"] == "measurement"]
    write_cards(RESULTS, models, errors_path=ERRORS)
    text = (models / "toy-mamba" / "README.md").read_text()
    e = next(r for r in errs if r["model"] == "toy-mamba")
    worst = max(e["miss_rate_by_key"], key=e["miss_rate_by_key"].get)
    assert "Why the misses" in text and worst in text and f"{e['correct']} correct" in text
