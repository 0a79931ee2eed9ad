"""app.py: navigation over the pages that exist, and the sidebar frame."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_app_opens_on_arena_with_the_sidebar_frame(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Arena"
    side = [t.value for t in at.sidebar.text]
    assert any(s.startswith("Device: cpu") for s in side), side
    assert any(str(arena_env / "arena.duckdb") in s for s in side), side


def test_every_existing_page_can_be_switched_to(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for page in ("pages/models.py", "pages/history.py", "pages/rag_eval.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
    at.switch_page("pages/arena.py").run()
    assert at.title[0].value == "Arena"


def test_arena_inputs_survive_a_visit_to_another_page(arena_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
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
