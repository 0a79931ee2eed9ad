"""What every page shares once per process: the model manager, the results store (committed results
imported on first start) and a `name -> Generator` getter on the sidebar's device.

Heavy modules (torch through the manager, duckdb through the store) load inside these functions, on first
use, never when a page imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from backend.generation.compare import device_setting, error_sentence

REPO = Path(__file__).resolve().parents[2]


@st.cache_resource(show_spinner=False)
def _manager(fake: str, fake_delay: str):
    from backend.models.manager import ModelManager

    return ModelManager()


def get_manager():
    """The process-wide ModelManager (keyed by the fake-backend env vars so tests that flip them get theirs)."""
    return _manager(os.environ.get("SSM_ARENA_FAKE", ""), os.environ.get("SSM_ARENA_FAKE_DELAY", ""))


@st.cache_resource(show_spinner=False)
def _store(path: str):
    from store import open_store

    return open_store(path or None)


def get_store():
    """The store named by SSM_ARENA_DB (default data/arena.duckdb). Raises store.StoreError with a sentence."""
    return _store(os.environ.get("SSM_ARENA_DB", ""))


def store_path() -> str:
    try:
        return str(getattr(get_store(), "path", "") or os.environ.get("SSM_ARENA_DB", "data/arena.duckdb"))
    except Exception as e:  # the frame must render even when the store cannot open
        return f"{os.environ.get('SSM_ARENA_DB', 'data/arena.duckdb')} (cannot open: {e})"


def results_dir() -> Path:
    return Path(os.environ.get("SSM_ARENA_RESULTS") or REPO / "results")


@st.cache_resource(show_spinner=False)
def _import_once(db: str, folder: str) -> str | None:
    """Import results/*.jsonl(.gz) into an empty store; returns the import's problems (bad lines) or None."""
    from store import StoreImportError

    store = get_store()
    if len(store.runs()) or not [*Path(folder).glob("*.jsonl"), *Path(folder).glob("*.jsonl.gz")]:
        return None
    with st.spinner(f"First start: importing committed results from {folder} ..."):
        try:
            store.import_results_dir(folder)
        except StoreImportError as e:  # the good lines went in; remember the sentence, don't retry each run
            return str(e)
    return None


def ensure_results_imported() -> None:
    """On first start, fill an empty store from results/*.jsonl and *.jsonl.gz (once per process and store)."""
    try:
        problems = _import_once(os.environ.get("SSM_ARENA_DB", ""), str(results_dir()))
    except Exception as e:  # e.g. the store is locked by another program: retried on the next run
        problems = error_sentence(e)
    if problems:
        st.warning(f"Some committed results could not be imported: {problems}")


def store_or_stop():
    """The page's store with committed results imported, or an error sentence and the page stops."""
    try:
        store = get_store()
    except Exception as e:
        st.error(f"The results store could not be opened: {error_sentence(e)}")
        st.stop()
    ensure_results_imported()
    return store


def generator_getter():
    """`name -> Generator` on the sidebar's device, through the process-wide model manager."""
    manager, device = get_manager(), device_setting()
    return lambda name: manager.get(name, device=device)


@st.cache_resource(show_spinner="Loading the embedding model (all-MiniLM-L6-v2) ...")
def get_embedder(device: str):
    """The sentence embedder for retrieval on `device` ("auto": the retrieval package's choice), once per
    process; sentence-transformers loads here, on first use."""
    from retrieval.embed import get_embedder as load_embedder

    return load_embedder(None if device == "auto" else device)
