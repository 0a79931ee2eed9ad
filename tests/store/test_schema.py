"""Schema creation and migrations."""

import duckdb
import pytest

from store import StoreError, open_store
from store.schema import LATEST_VERSION, MIGRATIONS, TABLES, migrate


def _columns(con, table):
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dict(rows)


def test_fresh_database_gets_every_table_with_the_documented_columns(store):
    assert store.applied_migrations == [v for v, _, _ in MIGRATIONS]
    assert store.schema_version() == LATEST_VERSION
    with store.session() as con:
        for table, columns in TABLES.items():
            assert _columns(con, table) == columns, table


def test_migrations_rerun_idempotently(store, db_path):
    store.start_run("bench", {}, {})
    again = open_store(db_path)
    assert again.applied_migrations == []
    with again.session() as con:
        assert migrate(con) == []
        versions = [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert len(again.runs()) == 1  # data untouched


def test_partially_migrated_database_gets_the_missing_steps(db_path):
    db_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(db_path))  # what an older version of the code would have left
    version, name, statements = MIGRATIONS[0]
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    for sql in statements:
        con.execute(sql)
    con.execute("INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name])
    con.close()
    st = open_store(db_path)
    assert st.applied_migrations == [v for v, _, _ in MIGRATIONS[1:]]
    st.add_collection("c", "e", 4)  # a table of a later step exists now


def test_database_from_a_newer_version_is_refused(store, db_path):
    with store.session() as con:
        con.execute("INSERT INTO schema_migrations VALUES (?, 'future', now()::TIMESTAMP)", [LATEST_VERSION + 1])
    with pytest.raises(StoreError, match="newer than this code"):
        open_store(db_path)
