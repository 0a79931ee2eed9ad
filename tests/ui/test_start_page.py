"""The start page (the default): what the tool and the bundled models are, held-out scores from the committed
records, trained prompt formats that fill the Arena in one click, headline results with their pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.arena.examples import examples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def committed_results(arena_env, monkeypatch):
    """The repository's committed results (the start page reads results/ files, not the store). The store
    gets one run first, so the first start's background import (an empty store only) does not run: these
    tests do not need it, and it would still be writing when the test process exits."""
    from store import open_store

    monkeypatch.setenv("SSM_ARENA_RESULTS", str(ROOT / "results"))
    store = open_store(str(arena_env / "arena.duckdb"))
    store.finish_run(store.start_run("generate", {}, {}), "completed")
    return arena_env


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    return at


def test_start_page_explains_the_models_with_held_out_scores_from_the_records(committed_results):
    at = _app()
    assert at.title[0].value == "SSM Arena"
    models, scores = at.table[0].value, at.table[1].value.reset_index()
    assert list(models.index) == ["toy-mamba", "toy-mamba2", "toy-transformer", "toy-hybrid"]
    assert set(models["training context (tokens)"]) == {1024}
    qa = scores[scores["task"] == "open-book QA (held-out passage)"].iloc[0]
    # the values of results/train_h200.jsonl, the records of the checkpoints on disk (their train_summary.json)
    assert qa["toy-transformer"] == "1.000 [0.981, 1.000]" and qa["toy-mamba"] == "0.810 [0.750, 0.858]"
    assert qa["n"] == 200
    text = " ".join(m.value for m in at.markdown)
    assert "fictional toy world" in text and "1,024-token contexts" in text and "cannot" in text


def test_every_trained_format_has_a_try_button_that_fills_the_arena(committed_results):
    at = _app()
    buttons = [b for b in at.button if b.key and b.key.startswith("start_try_")]
    assert [b.label for b in buttons] == [f"Try: {e.title}" for e in examples()]
    passkey = next(i for i, e in enumerate(examples()) if e.key == "passkey")
    at.button(key=f"start_try_{passkey}").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Arena"
    ex = examples()[passkey]
    assert at.text_area(key="arena_prompt").value == ex.prompt
    assert at.text_input(key="arena_reference").value == ex.reference
    assert at.toggle(key="arena_line_stop").value is True
    at.button(key="arena_generate").click().run()  # a sensible first generation, marked against the reference
    assert not at.exception, at.exception
    assert sum("-badge[" in m.value for m in at.markdown) == 2


def test_headlines_are_computed_from_the_committed_results_and_link_their_pages(committed_results):
    at = _app()
    texts = [t.value for t in at.text]
    assert any(t.startswith("mamba-1.4b's decode (time per output token)") and "4-5x" in t for t in texts), texts
    assert any("toy-mamba's decode (time per output token) becomes faster" in t for t in texts), texts
    assert any(t.startswith("Pass key at 2,048 tokens (n = 20)") for t in texts), texts
    links = [link.proto.page for link in at.get("page_link")]  # url paths of app.py's navigation
    assert links == ["models", "long_context", "performance", "performance", "models"], links
    assert any("bench_h200.jsonl" in c.value for c in at.caption)


def test_without_committed_records_the_page_says_so_instead_of_showing_numbers(arena_env):
    at = _app()  # SSM_ARENA_RESULTS is an empty folder here
    assert len(at.table) == 1  # the models table, no scores table
    assert any("No committed evaluation records" in c.value for c in at.caption)
