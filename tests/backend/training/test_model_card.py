"""Model cards are written from the records: numbers in the card are the records' numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.training.model_card import copy_accuracy, copy_note, read_records, targets, write_cards

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


def test_a_model_that_copies_nothing_gets_a_known_limitation(models, tmp_path):
    """Issue 13: the copy-task finding comes from the committed run, for the model it concerns only."""
    copy = ROOT / "results" / "exp_long_context_copy_h100.jsonl.gz"
    if not copy.is_file():
        pytest.skip("the copy-task run is not committed")
    acc = copy_accuracy(copy)
    write_cards(RESULTS, models, errors_path=ERRORS, copy_results=copy)
    for name in ("toy-mamba", "toy-mamba2", "toy-transformer"):
        text = (models / name / "README.md").read_text()
        copies_nothing = max(a for a, _ in acc[name].values()) <= 0.05
        assert ("Known limitation: it does not copy" in text) == copies_nothing, name
    assert copies_nothing is False  # the transformer copies short sequences
    text = (models / "toy-mamba" / "README.md").read_text()
    assert f"0 of {sum(n for _, n in acc['toy-mamba'].values())} sequences" in text
    assert copy_note("toy-mamba", None) == "" and copy_note("toy-mamba", tmp_path / "missing.jsonl") == ""


def test_a_model_of_another_recipe_is_refused_before_any_card_is_written(tmp_path):
    """The bundled hybrid's training file (issue 14's context mixture, with emergence-probe rows and a .gz
    suffix): model-card says why it cannot write that card and leaves the hand-written one as it was."""
    results = ROOT / "results" / "train14_h100_s0_bundle.jsonl.gz"
    if not results.is_file():
        pytest.skip("results/train14_h100_s0_bundle.jsonl.gz is not committed")
    train, evals = read_records(results)
    assert [s["model"] for s in train] == ["toy-hybrid"] and "final_loss" in train[0]  # probe rows are not summaries
    assert {r["task"] for r in evals} >= {"qa_open", "fewshot", "arithmetic"}
    folder = tmp_path / "toy-hybrid"
    folder.mkdir()
    (folder / "README.md").write_text("hand-written\n")
    with pytest.raises(ValueError, match="toy-hybrid \\(mixture context\\) learnt from another recipe"):
        write_cards(results, tmp_path)
    assert (folder / "README.md").read_text() == "hand-written\n"
