"""A truncated and a bit-flipped store file, met by the command line and by the dashboard: refused untouched,
with one sentence that says to move it away (store/integrity.py); a new store starts once it is moved."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store import integrity, open_store

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "rag.py")


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _flip_a_bit(path: Path) -> None:
    _, layout = integrity._header(path)
    free = integrity.free_blocks(path, layout)
    block = next(b for b in range(layout["on_disk"] - 1, -1, -1) if b not in free)
    offset = integrity.FIRST_BLOCK + block * layout["block_size"] + 5000
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


@pytest.fixture
def damaged_env(tmp_path, monkeypatch):
    db = tmp_path / "arena.duckdb"
    st = open_store(db)
    for i in range(8):
        run = st.start_run("bench", {"i": i}, {})
        st.add_measurements(run, [{"model": "m", "value": float(j), "pad": "x" * 60} for j in range(3000)])
        st.finish_run(run, "completed")
    st.add_collection("notes", "all-MiniLM-L6-v2", 384)
    monkeypatch.setenv("SSM_ARENA_DB", str(db))
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SSM_ARENA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    return db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage, clause", [(_truncate, "the file was cut short"),
                                            (_flip_a_bit, "fail DuckDB's checksum")])
def test_the_cli_refuses_a_damaged_store_untouched(damaged_env, capsys, damage, clause):
    from backend.cli import main

    damage(damaged_env)
    before = _digest(damaged_env)
    for argv in (["rag", "list"], ["import-results", str(damaged_env.parent)]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: The results database {damaged_env} is damaged: ")
        assert clause in lines[0] and "Move it away" in lines[0] and "Traceback" not in err
    assert _digest(damaged_env) == before and not Path(str(damaged_env) + ".wal").exists()


@pytest.mark.parametrize("damage", [_truncate, _flip_a_bit])
def test_the_dashboard_refuses_a_damaged_store_untouched_and_starts_anew_once_it_is_moved(damaged_env, damage):
    import streamlit as st

    st.cache_resource.clear()
    damage(damaged_env)
    before = _digest(damaged_env)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert "is damaged" in error and "Move it away" in error and str(damaged_env) in error
    assert _digest(damaged_env) == before
    damaged_env.rename(damaged_env.with_suffix(".damaged"))
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    st.cache_resource.clear()
