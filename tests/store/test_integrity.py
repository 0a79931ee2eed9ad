"""A damaged database file is refused untouched with one sentence; runs of dead processes become interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from store import integrity, open_store
from store.errors import StoreDamagedError

ROOT = Path(__file__).resolve().parents[2]


def _filled(path, runs: int = 6, rows: int = 2000):
    st = open_store(path, lock_timeout=20)
    for i in range(runs):
        run_id = st.start_run("bench", {"i": i}, {})
        st.add_measurements(run_id, [{"model": "m", "value": float(j), "note": "x" * 40} for j in range(rows)])
        st.finish_run(run_id, "completed")
    return st


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused_untouched(path, match: str):
    before = _digest(path)
    with pytest.raises(StoreDamagedError, match=match) as err:
        open_store(path, lock_timeout=5)
    text = str(err.value)
    assert text.startswith(f"The results database {path} is damaged: ") and "Move it away" in text
    assert "\n" not in text and "Traceback" not in text
    assert _digest(path) == before  # untouched: no checkpoint, no WAL replay, no new tables
    assert not os.path.exists(str(path) + ".wal")
    return text


def test_the_checksum_and_the_free_list_are_duckdbs_own(tmp_path):
    """Every block DuckDB wrote verifies with the hand-written checksum, and the free list read from its metadata
    has DuckDB's own count: so the check raises no false alarm on a whole file."""
    path = tmp_path / "a.duckdb"
    st = _filled(path)
    st.add_collection("c", "e", 4)
    st.add_document("c", "d", "f", None, 1, "x", chunks=[{"chunk_id": i, "doc_id": "d", "text": "t" * 4000}
                                                         for i in range(300)])
    st.drop_collection("c")  # frees blocks; DuckDB may cut free blocks off the end of the file
    assert integrity.verify(path) is None and integrity.check_headers(path) is None
    damage, layout = integrity._header(path)
    free = integrity.free_blocks(path, layout)
    con = duckdb.connect(str(path), read_only=True)
    (row,) = con.execute("PRAGMA database_size").fetchall()
    con.close()
    assert (row[3], row[5]) == (layout["block_count"], len(free))  # total_blocks, free_blocks


def _used_block(path) -> int:
    _, layout = integrity._header(path)
    free = integrity.free_blocks(path, layout)
    return next(b for b in range(layout["on_disk"] // 2, layout["on_disk"]) if b not in free)


def test_a_truncated_file_is_refused_untouched(tmp_path):
    path = tmp_path / "a.duckdb"
    _filled(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    _assert_refused_untouched(path, "cut short")


def test_one_flipped_bit_in_a_block_is_refused_untouched(tmp_path):
    path = tmp_path / "a.duckdb"
    _filled(path)
    _, layout = integrity._header(path)
    offset = integrity.FIRST_BLOCK + _used_block(path) * layout["block_size"] + 12345
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    _assert_refused_untouched(path, "fail DuckDB's checksum")


def test_a_mebibyte_of_random_bytes_in_the_middle_is_refused(tmp_path):
    path = tmp_path / "a.duckdb"
    _filled(path)
    with open(path, "r+b") as f:
        f.seek(integrity.FIRST_BLOCK + _used_block(path) * 2**18 - 2**19)  # DuckDB's 256 KiB blocks
        f.write(os.urandom(2**20))
    _assert_refused_untouched(path, "blocks fail DuckDB's checksum")


def test_damage_while_the_store_is_open_is_refused_at_the_next_call(tmp_path):
    path = tmp_path / "a.duckdb"
    st = _filled(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100_000)
    before = _digest(path)
    for _ in range(2):  # and stays refused
        with pytest.raises(StoreDamagedError, match="cut short"):
            st.start_run("bench", {}, {})
    assert _digest(path) == before


def test_after_moving_the_damaged_file_away_a_new_store_starts(tmp_path):
    path = tmp_path / "a.duckdb"
    _filled(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(StoreDamagedError):
        open_store(path)
    path.rename(tmp_path / "a.duckdb.damaged")
    st = open_store(path)
    assert st.runs().empty and integrity.verify(path) is None


def test_runs_of_a_killed_process_become_interrupted_at_the_next_open(tmp_path):
    path = tmp_path / "a.duckdb"
    code = ("import sys, os, signal; sys.path.insert(0, sys.argv[2]); from store import open_store; "
            "st = open_store(sys.argv[1]); rid = st.start_run('fewshot', {}, {}); "
            "st.add_measurements(rid, [{'model': 'm', 'value': 1.0}]); print(rid, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(ROOT)], capture_output=True, text=True,
                         timeout=120)
    dead_run = out.stdout.strip()
    assert dead_run, out.stderr
    st = open_store(path)
    mine = st.start_run("fewshot", {}, {})  # this process's own run stays running
    again = open_store(path)
    assert again.interrupted_runs == []  # marked once, by the first open after the death
    runs = again.runs().set_index("run_id")
    assert runs.loc[dead_run, "status"] == "interrupted" and runs.loc[mine, "status"] == "running"
    assert "ended before the run finished" in runs.loc[dead_run, "summary"]["interrupted"]
    assert runs.loc[mine, "owner"]["pid"] == os.getpid()
    assert len(again.measurements(run_ids=dead_run)) == 1  # its rows are kept


def test_runs_of_other_hosts_and_without_owner_are_left_running(tmp_path):
    path = tmp_path / "a.duckdb"
    st = open_store(path)
    other = st.start_run("bench", {}, {})
    legacy = st.start_run("bench", {}, {})
    with st.session() as con:
        con.execute("UPDATE runs SET owner = ? WHERE run_id = ?",
                    [json.dumps({"host": "gpu-box-7", "pid": 1, "started": 0}), other])
        con.execute("UPDATE runs SET owner = NULL WHERE run_id = ?", [legacy])
    runs = open_store(path).runs().set_index("run_id")
    assert set(runs["status"]) == {"running"}


def test_a_store_from_before_the_owner_column_gains_it(tmp_path):
    path = tmp_path / "old.duckdb"
    st = open_store(path)
    old = st.start_run("bench", {}, {})
    with st.session() as con:  # what a store written before schema step 4 looks like
        con.execute("ALTER TABLE runs DROP COLUMN owner")
        con.execute("DELETE FROM schema_migrations WHERE version = 4")
    again = open_store(path)
    assert 4 in again.applied_migrations
    runs = again.runs()
    assert "owner" in runs.columns and runs.set_index("run_id").loc[old, "status"] == "running"
