"""SSM Arena: Streamlit entry point (`streamlit run app.py`).

Lists every planned page explicitly (st.navigation ignores the pages/ folder) and includes each one whose
file exists, grouped in sections; draws the sidebar frame (device, store path) shown on every page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from backend.generation.compare import device_setting, error_sentence
from pages.components import resources

ROOT = Path(__file__).resolve().parent

# section -> (file, title, icon); the URL is the file's stem, except the Kernels page (kernel_results.py, so
# that no module in pages/ is named like the project's `kernels` package) which keeps /kernels.
PAGES = {
    "Start": [("pages/start.py", "Start here", ":material/home:")],
    "Compare": [("pages/arena.py", "Arena", ":material/compare_arrows:"),
                ("pages/ab.py", "Blind A/B", ":material/how_to_vote:"),
                ("pages/rag.py", "RAG", ":material/description:"),
                ("pages/inside_view.py", "Inside view", ":material/visibility:")],
    "Experiments": [("pages/fewshot.py", "Few-shot", ":material/school:"),
                    ("pages/long_context.py", "Long context", ":material/straighten:"),
                    ("pages/cot.py", "Chain of thought", ":material/psychology:"),
                    ("pages/rag_eval.py", "RAG evaluation", ":material/fact_check:")],
    "Results": [("pages/history.py", "History", ":material/history:"),
                ("pages/performance.py", "Performance", ":material/speed:"),
                ("pages/kernel_results.py", "Kernels", ":material/memory:"),
                ("pages/training.py", "Training", ":material/model_training:")],
    "Learn": [("pages/explainer.py", "Explainer", ":material/lightbulb:")],
    "Setup": [("pages/models.py", "Models", ":material/inventory_2:")],
}


URL_PATHS = {"pages/kernel_results.py": "kernels"}
DEFAULT_PAGE = "pages/start.py"  # a first visit opens on what the tool and the bundled models are


def build_pages() -> dict[str, list]:
    return {section: [st.Page(str(ROOT / f), title=t, icon=i, default=f == DEFAULT_PAGE,
                              url_path=None if f == DEFAULT_PAGE else URL_PATHS.get(f, Path(f).stem))
                      for f, t, i in entries]
            for section, entries in PAGES.items()}


def sidebar_frame():
    with st.sidebar:
        st.caption("SSM Arena: state space models vs transformers")
        try:
            loaded = resources.get_manager().loaded()
        except Exception as e:
            loaded = []
            st.warning(f"Model manager unavailable: {error_sentence(e)}")
        devices = sorted({info.device for info in loaded})
        st.text("Device: " + (", ".join(devices) if devices else f"{device_setting()} (no model loaded yet)"))
        st.text(f"Store: {resources.store_path()}")
        return st.empty()


def start_import(note) -> None:
    """First start: an empty store gets the committed results/*.jsonl in the background, started once the page
    has drawn (it would compete with the first page for the CPU); pages that read results wait for it (and
    start it if this did not run), the start page and the Arena do not."""
    if not resources.start_results_import():
        note.caption("Importing the committed results into the store (first start) ...")


st.set_page_config(page_title="SSM Arena", layout="wide")
nav = st.navigation(build_pages(), expanded=True)  # every page listed (collapsed, past 12 it hid Models)
import_note = sidebar_frame()
nav.run()
start_import(import_note)
