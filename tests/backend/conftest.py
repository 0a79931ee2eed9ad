"""Shared fixtures: an isolated data dir per test, and tiny model folders built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("USE_HUB_KERNELS", "0")

import pytest


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path, monkeypatch):
    """Every test gets its own SSM_ARENA_DATA (models.json, placeholders) and DB path."""
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "arena.duckdb"))
    monkeypatch.delenv("SSM_ARENA_FAKE", raising=False)
    yield


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """arch -> folder with a tiny saved model (mamba, mamba2, llama, gpt_neox) and its tokenizer."""
    from backend.models.placeholders import build_tiny

    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny(arch, root / arch) for arch in ("mamba", "mamba2", "llama", "gpt_neox")}


# the RAG glue, plan and CLI tests (tests/backend/test_rag.py, experiments/test_rag_plan.py, cli/test_rag_cli.py)
# use the real offline embedder and a retriever, as the retrieval tests do
from tests.retrieval.conftest import embedder, retriever  # noqa: E402,F401
