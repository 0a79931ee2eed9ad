"""Opening the database: missing files and folders, files that are not databases, default path."""

import pytest

from store import StoreError, open_store
from store.db import REPO_ROOT, default_db_path


def test_missing_folder_and_file_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "arena.duckdb"
    st = open_store(path)
    assert path.is_file()
    assert st.runs().empty


def test_not_a_database_raises_and_leaves_the_file_unchanged(tmp_path):
    path = tmp_path / "notes.duckdb"
    content = b"these are my notes, not a database\n" * 50
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a DuckDB database") as err:
        open_store(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == content
    assert not (tmp_path / "notes.duckdb.wal").exists()


def test_short_garbage_file_is_refused_too(tmp_path):
    path = tmp_path / "x.duckdb"
    path.write_bytes(b"DUCK")
    with pytest.raises(StoreError):
        open_store(path)
    assert path.read_bytes() == b"DUCK"


def test_empty_file_becomes_a_database(tmp_path):
    path = tmp_path / "empty.duckdb"
    path.touch()
    open_store(path).start_run("bench", {}, {})
    assert len(open_store(path).runs()) == 1


def test_folder_instead_of_file_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path)


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SSM_ARENA_DB", raising=False)
    assert default_db_path() == REPO_ROOT / "data" / "arena.duckdb"
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "env.duckdb"))
    st = open_store()
    assert st.path == tmp_path / "env.duckdb" and st.path.exists()


def test_store_works_after_an_error_inside_a_session(store):
    with pytest.raises(ZeroDivisionError):
        with store.session() as con:
            con.execute("INSERT INTO runs (run_id, kind) VALUES ('r1', 'bench')")
            raise ZeroDivisionError("the caller failed mid-session")
    assert store.runs().empty  # rolled back
    store.start_run("bench", {}, {})
    assert len(store.runs()) == 1


def test_database_errors_become_store_errors_and_roll_back(store):
    with pytest.raises(StoreError, match="nothing was written"):
        with store.session() as con:
            con.execute("INSERT INTO runs (run_id, kind) VALUES ('r1', 'bench')")
            con.execute("SELECT * FROM no_such_table")
    assert store.runs().empty


def test_file_deleted_while_running_comes_back_with_its_tables(store, db_path):
    import shutil

    store.start_run("bench", {}, {})
    db_path.unlink()
    assert store.runs().empty
    shutil.rmtree(db_path.parent)  # the whole data folder, too
    assert store.runs().empty
    store.start_run("bench", {}, {})
    assert len(store.runs()) == 1

