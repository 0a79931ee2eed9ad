"""The Models page's bundled-model section (pages/components/model_cards.py): the held-out evaluation as a
compact leaderboard with 95% intervals, from the committed records of the checkpoints on disk, and each
bundled model's card."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "models.py")


def test_leaderboard_with_intervals_and_a_card_per_bundled_model(arena_env, monkeypatch):
    monkeypatch.setenv("SSM_ARENA_RESULTS", str(ROOT / "results"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert "Bundled models: held-out evaluation" in [s.value for s in at.subheader]
    boards = [d.value for d in at.dataframe if "toy-mamba2" in d.value.columns]
    assert len(boards) == 2  # the headline settings, and every task and setting
    head, full = boards
    assert len(full) > len(head) >= 8
    qa = head[head["task"] == "closed-book QA (training world)"].iloc[0]
    assert qa["toy-mamba"] == "0.935 [0.892, 0.962]" and qa["n"] == 200
    assert all(" [" in cell for cell in head["toy-transformer"])  # every value with its interval
    assert any("train_h200.jsonl" in c.value and "NVIDIA H200" in c.value for c in at.caption)
    cards = [e.label for e in at.expander if e.label.startswith("Model card: ")]
    assert cards == ["Model card: toy-mamba", "Model card: toy-mamba2", "Model card: toy-transformer",
                     "Model card: toy-hybrid"]
    assert any("Evaluation (held-out split" in m.value for m in at.markdown)


def test_without_matching_records_the_section_says_how_to_make_them(arena_env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()  # SSM_ARENA_RESULTS: an empty folder
    assert not at.exception, at.exception
    assert any("python -m backend evaluate" in c.value for c in at.caption)
    assert not [d for d in at.dataframe if "toy-mamba2" in d.value.columns]
