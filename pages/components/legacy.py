"""Keep Streamlit from treating our pages/ folder as a legacy "pages directory" app.

Why: app.py defines the app with st.navigation, but its page scripts live in a folder named pages/.
Streamlit 1.67 (the pinned version) decides per process, when the first session starts, whether the app
is a legacy pages-directory app: `PagesManager.__init__` (streamlit/runtime/pages_manager.py) sets the class
attribute `PagesManager.uses_pages_directory = (main script's folder / "pages").exists()` while it is still
None, and only `st.navigation` (streamlit/commands/navigation.py) sets it back to False. While it is True,
`ScriptRunner` (streamlit/runtime/scriptrunner/script_runner.py) does not execute app.py but `_mpa_v1()`,
which builds a navigation from app.py (for "/") and every pages/*.py and runs the requested script alone.
So the first visit to a fresh server straight to a page's URL (a bookmark of /history) would run that page
without app.py: Streamlit's legacy menu (file names as titles, no sections), no sidebar frame, no wide
layout.

What was checked (Streamlit 1.67.0): no config option turns the pages directory off (`streamlit/config.py`
has only `client.showSidebarNavigation`, which hides the legacy menu but still runs `_mpa_v1`); the
documentation of st.navigation says the pages/ directory is ignored only "as soon as any session of your app
executes the st.navigation command". The supported alternative would be to rename the folder, which this
project does not do (pages/ is the UI layer's name). Hence this one patch, run once per process when the
`pages.components` package is first imported (every page imports it): if the legacy mode is still on inside
a script run, switch it off exactly as st.navigation does and rerun, which now goes through app.py and
lands on the same page (same url_path). tests/ui/test_legacy_pages.py shows both the problem and the fix.
"""

from __future__ import annotations


def leave_legacy_pages_mode() -> None:
    """Switch Streamlit's legacy pages-directory mode off and rerun through app.py (no-op outside a script
    run, when the mode is already off, or on a Streamlit without this internal)."""
    import streamlit as st

    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except ImportError:  # a Streamlit without this internal: nothing to fix
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()
