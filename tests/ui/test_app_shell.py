"""app.py: navigation over the pages that exist, and the sidebar frame."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_app_opens_on_the_start_page_with_the_sidebar_frame(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "SSM Arena"  # the start page, not the Arena
    assert [h.value for h in at.header][:2] == ["The bundled models", "Try a trained prompt format"]
    side = [t.value for t in at.sidebar.text]
    assert any(s.startswith("Device: cpu") for s in side), side
    assert any(str(arena_env / "arena.duckdb") in s for s in side), side


def test_every_existing_page_can_be_switched_to(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for page in ("pages/arena.py", "pages/ab.py", "pages/models.py", "pages/history.py", "pages/rag_eval.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
    at.switch_page("pages/start.py").run()
    assert at.title[0].value == "SSM Arena"


def test_the_first_start_import_runs_in_the_background_and_pages_that_read_results_wait(arena_env, monkeypatch):
    """A cold start with an empty store must not hold the first page for the import (about 10 s here)."""
    import threading

    import store.db as db
    from store import RecordWriter

    w = RecordWriter(arena_env / "results" / "bench_cpu.jsonl")
    run = w.start_run("bench", {}, {"device": "cpu"}, name="committed")
    w.add_measurements(run, [{"model": "toy-mamba", "prompt_tokens": 64, "ttft_ms": 3.0, "device": "cpu"}])
    w.finish_run(run)
    gate = threading.Event()
    real = db.Store.import_results_dir

    def held_back(self, folder="results"):
        gate.wait(30)
        return real(self, folder)

    monkeypatch.setattr(db.Store, "import_results_dir", held_back)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()  # the import is held back ...
        assert not at.exception, at.exception
        assert at.title[0].value == "SSM Arena"  # ... and the start page drew anyway
        assert any("Importing the committed results" in c.value for c in at.sidebar.caption)
        gate.set()
        at.switch_page("pages/history.py").run()  # History waits for the import, then shows the rows
        assert not at.exception, at.exception
        assert any("1 of 1 measurement rows match" in c.value for c in at.caption)
    finally:
        gate.set()


def test_arena_inputs_survive_a_visit_to_another_page(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/arena.py").run()
    at.text_area(key="arena_prompt").set_value("Tell me about the mill")
    at.multiselect(key="arena_models").set_value(["toy-mamba2"])
    at.number_input(key="arena_max_new").set_value(7).run()
    at.switch_page("pages/models.py").run()
    at.switch_page("pages/arena.py").run()
    assert not at.exception, at.exception
    assert at.text_area(key="arena_prompt").value == "Tell me about the mill"
    assert at.multiselect(key="arena_models").value == ["toy-mamba2"]
    assert at.number_input(key="arena_max_new").value == 7


def test_rag_evaluation_is_listed_under_experiments():
    """app.PAGES, read without running app.py (its module level draws the app)."""
    import ast

    tree = ast.parse((ROOT / "app.py").read_text())
    pages = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGES")
    assert ("pages/rag_eval.py", "RAG evaluation", ":material/fact_check:") in pages["Experiments"]
    listed = {f for entries in pages.values() for f, _, _ in entries}
    assert listed == {p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py")}  # one file, one page
