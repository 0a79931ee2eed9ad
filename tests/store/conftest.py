import pytest

from store import open_store


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "db" / "arena.duckdb"


@pytest.fixture
def store(db_path):
    return open_store(db_path, lock_timeout=20)
