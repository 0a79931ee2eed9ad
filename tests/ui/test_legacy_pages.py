"""Our page scripts live in a folder named pages/, which Streamlit 1.67 reads as a legacy "pages directory"
app until st.navigation has run once in the process (see pages/components/legacy.py for the source read).

AppTest reproduces a fresh server: each run resets `PagesManager.uses_pages_directory` and re-derives it from
the pages/ folder next to app.py, and `switch_page` before the first run asks for a page by its file name, as
a browser's first visit to /history does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

import pages.components  # noqa: F401  (imported once per process, as in the server)

ROOT = Path(__file__).resolve().parents[2]


def _first_visit(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    return at.switch_page(page).run()


def _forget_components(monkeypatch) -> None:
    """A fresh process: pages.components not imported yet (restored after the test)."""
    for name in [m for m in sys.modules if m == "pages.components" or m.startswith("pages.components.")]:
        monkeypatch.delitem(sys.modules, name)


def test_without_the_patch_a_first_visit_runs_the_page_alone(arena_env):
    """The problem the patch exists for (if this fails, Streamlit no longer needs it: remove legacy.py).
    pages.components is already imported here, so its patch does not run again."""
    at = _first_visit("pages/history.py")
    assert at.title[0].value == "History"  # the page ran ...
    assert not any(t.value.startswith("Store: ") for t in at.sidebar.text)  # ... without app.py's frame


def test_a_first_visit_straight_to_a_page_url_lands_in_the_navigation_frame(arena_env, monkeypatch):
    _forget_components(monkeypatch)
    at = _first_visit("pages/history.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "History"  # the page asked for, not the default (Arena) ...
    side = [t.value for t in at.sidebar.text]
    assert any(s.startswith("Store: ") for s in side) and any(s.startswith("Device: ") for s in side), side
    at.switch_page("pages/kernel_results.py").run()  # ... and app.py's navigation (url_path "kernels") is in place
    assert not at.exception, at.exception
    assert at.title[0].value == "Kernels"


def test_the_patch_does_nothing_outside_a_script_run():
    from streamlit.runtime.pages_manager import PagesManager

    from pages.components.legacy import leave_legacy_pages_mode

    before = PagesManager.uses_pages_directory
    PagesManager.uses_pages_directory = True
    try:
        leave_legacy_pages_mode()  # no script run context: no rerun, flag untouched
        assert PagesManager.uses_pages_directory is True
    finally:
        PagesManager.uses_pages_directory = before
