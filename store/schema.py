"""Tables of the results store and the ordered migrations that create them.

DuckDB has no `PRAGMA user_version`, so applied steps are recorded in `schema_migrations(version,
name, applied_at)`. Each step is idempotent SQL (IF NOT EXISTS) and runs in the same transaction as
its bookkeeping row, so a step is either fully applied or not at all. To change the schema, append a
step (e.g. `ALTER TABLE measurements ADD COLUMN IF NOT EXISTS x DOUBLE`) and update the column map
below; never edit an applied step.

All timestamps are UTC (TIMESTAMP without time zone). JSON columns come back as Python objects.
"""

from __future__ import annotations

from store.records import utc_now

# Current columns of each table: name -> DuckDB type. tests/store checks these match the database.
RUNS = {
    "run_id": "VARCHAR",
    "kind": "VARCHAR",
    "name": "VARCHAR",
    "created_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
    "status": "VARCHAR",
    "config": "JSON",
    "meta": "JSON",  # git_sha, versions, device, hostname, models, seeds
    "summary": "JSON",
    "owner": "JSON",  # {"host", "pid", "started"} of the process that runs it: a dead owner -> "interrupted"
}

MEASUREMENTS = {
    "measurement_id": "VARCHAR",
    "run_id": "VARCHAR",
    "model": "VARCHAR",
    "family": "VARCHAR",
    "device": "VARCHAR",
    "dtype": "VARCHAR",
    "batch": "INTEGER",
    "prompt_tokens": "BIGINT",
    "new_tokens": "BIGINT",
    "path": "VARCHAR",
    "ttft_ms": "DOUBLE",
    "prefill_ms": "DOUBLE",
    "tpot_ms": "DOUBLE",
    "tpot_p90_ms": "DOUBLE",
    "decode_tok_s": "DOUBLE",
    "decode_tok_s_batch": "DOUBLE",
    "total_ms": "DOUBLE",
    "peak_mem_bytes": "BIGINT",
    "peak_mem_kind": "VARCHAR",
    "cache_bytes": "BIGINT",
    "cache_kind": "VARCHAR",
    "warmup": "INTEGER",
    "repeats": "INTEGER",
    "metric": "VARCHAR",
    "value": "DOUBLE",
    "n": "BIGINT",
    "ci_low": "DOUBLE",
    "ci_high": "DOUBLE",
    "created_at": "TIMESTAMP",
    "extra": "JSON",
}

PREDICTIONS = {
    "prediction_id": "VARCHAR",
    "run_id": "VARCHAR",
    "instance_id": "VARCHAR",
    "model": "VARCHAR",
    "prompt": "VARCHAR",
    "output": "VARCHAR",
    "extracted": "VARCHAR",
    "reference": "VARCHAR",
    "score": "DOUBLE",
    "params": "JSON",
    "extra": "JSON",
    "created_at": "TIMESTAMP",
}

COLLECTIONS = {
    "name": "VARCHAR",
    "embedder": "VARCHAR",
    "dim": "INTEGER",
    "created_at": "TIMESTAMP",
    "next_chunk_id": "BIGINT",  # high-water mark: chunk ids are never reused after a deletion
}

DOCUMENTS = {
    "collection": "VARCHAR",
    "doc_id": "VARCHAR",
    "filename": "VARCHAR",
    "n_pages": "INTEGER",
    "n_chars": "BIGINT",
    "sha256": "VARCHAR",
    "meta": "JSON",
    "created_at": "TIMESTAMP",
}

CHUNKS = {
    "collection": "VARCHAR",
    "chunk_id": "BIGINT",  # the FAISS id
    "doc_id": "VARCHAR",
    "source": "VARCHAR",
    "page": "INTEGER",
    "char_start": "BIGINT",
    "char_end": "BIGINT",
    "text": "VARCHAR",
}

VOTES = {  # blind A/B votes (store/votes.py)
    "vote_id": "VARCHAR",
    "created_at": "TIMESTAMP",
    "prompt": "VARCHAR",
    "model_a": "VARCHAR",
    "model_b": "VARCHAR",
    "family_a": "VARCHAR",
    "family_b": "VARCHAR",
    "output_a": "VARCHAR",
    "output_b": "VARCHAR",
    "vote": "VARCHAR",  # a | b | tie | both_bad
    "settings": "JSON",
    "meta": "JSON",
    "extra": "JSON",
}

TABLES = {
    "runs": RUNS,
    "measurements": MEASUREMENTS,
    "predictions": PREDICTIONS,
    "collections": COLLECTIONS,
    "documents": DOCUMENTS,
    "chunks": CHUNKS,
    "votes": VOTES,
}


def _create(table: str, columns: dict[str, str], key: str) -> str:
    cols = ",\n  ".join(f"{name} {typ}" for name, typ in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n  PRIMARY KEY ({key})\n)"


# Ordered steps: (version, name, statements). Append only.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "runs, measurements, predictions",
        [
            _create("runs", RUNS, "run_id"),
            _create("measurements", MEASUREMENTS, "measurement_id"),
            _create("predictions", PREDICTIONS, "prediction_id"),
        ],
    ),
    (
        2,
        "retrieval metadata",
        [
            _create("collections", COLLECTIONS, "name"),
            _create("documents", DOCUMENTS, "collection, doc_id"),
            _create("chunks", CHUNKS, "collection, chunk_id"),
        ],
    ),
    (3, "blind A/B votes", [_create("votes", VOTES, "vote_id")]),
    (4, "run owner (host, pid): runs whose process died become interrupted",
     ["ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner JSON"]),
]

LATEST_VERSION = MIGRATIONS[-1][0]

MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
)


def migrate(con) -> list[int]:
    """Apply the steps this database lacks, in order, inside the caller's transaction.

    Returns the versions applied now (empty when the database is up to date). Raises ValueError when
    the database was migrated by a newer version of this code.
    """
    con.execute(MIGRATIONS_TABLE)
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    if done and max(done) > LATEST_VERSION:
        raise ValueError(
            f"schema version {max(done)} is newer than this code knows ({LATEST_VERSION}); update the code"
        )
    applied = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for sql in statements:
            con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, utc_now()])
        applied.append(version)
    return applied
