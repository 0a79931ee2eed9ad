"""Fixtures for the page tests: fake models, a temporary store and data folder (never the user's)."""

from __future__ import annotations

import pytest


@pytest.fixture
def arena_env(tmp_path, monkeypatch):
    """SSM_ARENA_FAKE=1 and every run-time path in tmp_path; fresh st.cache_resource (the model manager and
    the store are cached per process, and AppTest runs pages in this process). Returns tmp_path."""
    import streamlit as st

    st.cache_resource.clear()
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    monkeypatch.delenv("SSM_ARENA_FAKE_DELAY", raising=False)
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "arena.duckdb"))
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("SSM_ARENA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SSM_ARENA_DEVICE", "cpu")
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def results_env(tmp_path, monkeypatch):
    """A temporary store, data folder and (empty) committed-results folder for the results pages, with fresh
    st.cache_resource and st.cache_data before and after. Returns tmp_path."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "arena.duckdb"))
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("SSM_ARENA_RESULTS", str(tmp_path / "results"))
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()
