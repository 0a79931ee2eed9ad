"""What every page shares once per process: the model manager, the results store (committed results
imported on first start) and a `name -> Generator` getter on the sidebar's device.

Heavy modules (torch through the manager, duckdb through the store) load inside these functions, on first
use, never when a page imports this module.
"""

from __future__ import annotations

import os
import threading
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
    """The store's file, as store.open_store resolves it, without opening it: the sidebar draws before every
    page, and importing duckdb and opening the file there cost the first page about a second (pages that use
    the store open it, and say so when they cannot)."""
    env = os.environ.get("SSM_ARENA_DB")
    return str(Path(env).expanduser().absolute() if env else REPO / "data" / "arena.duckdb")


def results_dir() -> Path:
    return Path(os.environ.get("SSM_ARENA_RESULTS") or REPO / "results")


class _ResultsImport:
    """The first start's import of results/*.jsonl(.gz) into an empty store, in a background thread, so the
    first page draws at once (about 10 s of import on a 2-core CPU); pages that read results wait for it."""

    def __init__(self, store, folder: str) -> None:
        self.problems: str | None = None  # the import's sentence (bad lines), kept: not retried each run
        self.retry = False  # the import could not run at all (e.g. the store was locked): try again later
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(store, folder), daemon=True, name="results-import").start()

    def _run(self, store, folder: str) -> None:
        from store import StoreImportError

        try:
            if not len(store.runs()) and [*Path(folder).glob("*.jsonl"), *Path(folder).glob("*.jsonl.gz")]:
                store.import_results_dir(folder)
        except StoreImportError as e:  # the good lines went in; remember the sentence, don't retry each run
            self.problems = str(e)
        except Exception as e:  # e.g. the store is locked by another program: retried on the next run
            self.problems, self.retry = error_sentence(e), True
        finally:
            self.done.set()


@st.cache_resource(show_spinner=False)
def _import_job(db: str, folder: str) -> _ResultsImport:
    return _ResultsImport(get_store(), folder)


def start_results_import() -> bool:
    """Start the first start's import in the background (once per process and store); True when done."""
    try:
        return _import_job(os.environ.get("SSM_ARENA_DB", ""), str(results_dir())).done.is_set()
    except Exception:  # the store cannot open: the pages that need it say so
        return True


def ensure_results_imported() -> None:
    """On first start, fill an empty store from results/*.jsonl and *.jsonl.gz (once per process and store);
    waits for the background import when it is still running."""
    folder = str(results_dir())
    try:
        job = _import_job(os.environ.get("SSM_ARENA_DB", ""), folder)
        if not job.done.is_set():
            with st.spinner(f"First start: importing committed results from {folder} ..."):
                job.done.wait()
        problems = job.problems
        if job.retry:
            _import_job.clear()
    except Exception as e:  # e.g. the store cannot open: retried on the next run
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
    process: a process of its own with one compute thread (retrieval/embed_process.py), so a search neither
    waits for an upload's worker nor for this process's generations; it starts here, on first use."""
    from retrieval.embed_process import EmbedderProcess

    embedder = EmbedderProcess(None if device == "auto" else device)
    embedder.encode(["warm-up"])  # start it now, under the spinner, not inside the first search
    return embedder
