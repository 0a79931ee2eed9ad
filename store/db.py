"""The DuckDB results store: runs, measurements, predictions (+ retrieval metadata, see retrieval_tables).

Every public method opens its own short-lived connection under the store's locks (store/connection.py),
so the dashboard's threads and CLI processes can call it at the same time. Readers return pandas
DataFrames ready for plotly; JSON columns come back as Python objects; timestamps are UTC.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from store import importer
from store.connection import Connector, registered
from store.errors import StoreError
from store.liveness import current_owner, mark_interrupted
from store.records import check_end_status, new_id, utc_now
from store.retrieval_tables import RetrievalTablesMixin
from store.rows import decode_json_columns, normalize_all, to_arrow, to_timestamp
from store.schema import LATEST_VERSION, MEASUREMENTS, PREDICTIONS, RUNS, migrate
from store.votes import VotesMixin

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCK_TIMEOUT_S = 60.0


def default_db_path() -> Path:
    env = os.environ.get("SSM_ARENA_DB")
    return Path(env).expanduser() if env else REPO_ROOT / "data" / "arena.duckdb"


def open_store(path: str | os.PathLike | None = None, lock_timeout: float | None = None) -> Store:
    """Open (creating folder, file and schema as needed) the results database.

    path: default env SSM_ARENA_DB, else <repo>/data/arena.duckdb.
    lock_timeout: seconds a call may wait for other writers (default env SSM_ARENA_DB_LOCK_TIMEOUT or 60).
    """
    p = Path(path).expanduser() if path is not None else default_db_path()
    p = p.absolute()
    if lock_timeout is None:
        raw = os.environ.get("SSM_ARENA_DB_LOCK_TIMEOUT", str(DEFAULT_LOCK_TIMEOUT_S))
        try:
            lock_timeout = float(raw)
        except ValueError:
            raise StoreError(f"SSM_ARENA_DB_LOCK_TIMEOUT must be a number of seconds, not {raw!r}.") from None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"Cannot create the folder {p.parent} for the results database ({e.strerror}).") from None
    return Store(p, lock_timeout)


def _as_list(v) -> list | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    return list(v)


class Store(RetrievalTablesMixin, VotesMixin):
    """Handle on one results database; cheap, stateless between calls and safe to share across threads.

    Writes: start_run, finish_run, add_measurements, add_predictions, import_jsonl, import_results_dir
    (+ retrieval tables). Reads: runs, measurements, predictions, done_instances, counts.
    """

    def __init__(self, path: Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S):
        self.path = path
        self._conn = Connector(path, lock_timeout)
        with self._conn.session() as con:
            try:
                self.applied_migrations = migrate(con)
            except ValueError as e:
                raise StoreError(f"The results database {path} cannot be used: {e}.") from None
            self.interrupted_runs = mark_interrupted(con)  # runs whose process died since the last open
        self._conn.on_create = migrate  # a file deleted while the app runs comes back with its tables

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def session(self):
        """A connection in a transaction, under the store's locks (for store-internal code and tests)."""
        return self._conn.session()

    def schema_version(self) -> int:
        with self.session() as con:
            return con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0] or 0

    @staticmethod
    def latest_schema_version() -> int:
        return LATEST_VERSION

    # ---- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _insert(con, table: str, rows: list[dict], columns: dict[str, str], ignore_existing: bool = True) -> int:
        """Bulk insert normalized rows through Arrow; returns how many rows were new."""
        if not rows:
            return 0
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        with registered(con, "incoming_rows", to_arrow(rows, columns)):
            return con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM incoming_rows").fetchall()[0][0]

    @staticmethod
    def _require_run(con, run_id: str) -> None:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
            raise StoreError(f"There is no run {run_id!r} in the results database; call start_run first.")

    def start_run(self, kind: str, config: dict, meta: dict, name: str | None = None) -> str:
        if not kind or not isinstance(kind, str):
            raise StoreError("A run needs a kind (a short string such as 'bench' or 'fewshot').")
        row = {"run_id": new_id(), "kind": kind, "name": name, "created_at": utc_now(),
               "status": "running", "config": config or {}, "meta": meta or {}, "owner": current_owner()}
        rows = normalize_all([row], RUNS, "run")
        with self.session() as con:
            self._insert(con, "runs", rows, RUNS)
        return row["run_id"]

    def finish_run(self, run_id: str, status: str = "completed", summary: dict | None = None) -> None:
        try:
            check_end_status(status)
        except ValueError as e:
            raise StoreError(str(e)) from None
        (norm,) = normalize_all([{"summary": summary}], RUNS, "run summary")
        with self.session() as con:
            self._require_run(con, run_id)
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE run_id = ?",
                [status, utc_now(), norm.get("summary"), run_id],
            )

    def _add_rows(self, run_id: str, rows: list[dict], table: str, columns: dict[str, str]) -> int:
        what = table[:-1]  # "measurement" / "prediction"
        id_key = f"{what}_id"
        rows = list(rows)
        if not rows:
            return 0
        now = utc_now()
        prepared = []
        for r in rows:
            if not isinstance(r, dict):
                raise StoreError(f"Each {what} must be a dict, got {type(r).__name__}.")
            prepared.append({**r, "run_id": run_id, id_key: r.get(id_key) or new_id(),
                             "created_at": r.get("created_at") or now})
        norm = normalize_all(prepared, columns, what)
        with self.session() as con:
            self._require_run(con, run_id)
            return self._insert(con, table, norm, columns)

    def add_measurements(self, run_id: str, rows: list[dict]) -> int:
        """Append measurement rows to a run; returns how many were new. Unknown keys go to `extra`."""
        return self._add_rows(run_id, rows, "measurements", MEASUREMENTS)

    def add_predictions(self, run_id: str, rows: list[dict]) -> int:
        """Append prediction rows to a run; returns how many were new. Unknown keys go to `extra`."""
        return self._add_rows(run_id, rows, "predictions", PREDICTIONS)

    # ---- reads ----------------------------------------------------------------------------------

    def _query(self, sql: str, params: list) -> pd.DataFrame:
        with self.session() as con:
            return con.execute(sql, params).df()

    def runs(self, kind: str | Iterable[str] | None = None) -> pd.DataFrame:
        """One row per run, newest first; config/meta/summary are dicts."""
        where, params = "", []
        if kind is not None:
            where, params = "WHERE list_contains(?, kind)", [_as_list(kind)]
        df = self._query(f"SELECT * FROM runs {where} ORDER BY created_at DESC", params)
        return decode_json_columns(df, RUNS)

    def measurements(self, kinds=None, models=None, devices=None, run_ids=None, since=None, until=None,
                     expand_extra: bool = False) -> pd.DataFrame:
        """Measurement rows (oldest first) with the run's `kind` and `run_name` joined in.

        Filters take a value or a list; since/until are datetimes or ISO strings (UTC) on created_at.
        expand_extra=True also turns keys of `extra` into columns (where no column has that name).
        """
        conds, params = [], []
        for col, val in (("r.kind", kinds), ("m.model", models), ("m.device", devices), ("m.run_id", run_ids)):
            if val is not None:
                conds.append(f"list_contains(?, {col})")
                params.append(_as_list(val))
        for op, val in ((">=", since), ("<", until)):
            if val is not None:
                conds.append(f"m.created_at {op} ?")
                params.append(to_timestamp(val))
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        df = self._query(
            f"SELECT m.*, r.kind AS kind, r.name AS run_name FROM measurements m "
            f"LEFT JOIN runs r ON m.run_id = r.run_id {where} ORDER BY m.created_at, m.measurement_id",
            params,
        )
        df = decode_json_columns(df, MEASUREMENTS)
        return _expand(df) if expand_extra else df

    def predictions(self, run_id: str | None = None, model: str | None = None, kind: str | None = None,
                    expand_extra: bool = False) -> pd.DataFrame:
        """Prediction rows (oldest first) with the run's `kind` joined in; params/extra are dicts."""
        conds, params = [], []
        for col, val in (("p.run_id", run_id), ("p.model", model), ("r.kind", kind)):
            if val is not None:
                conds.append(f"list_contains(?, {col})")
                params.append(_as_list(val))
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        df = self._query(
            f"SELECT p.*, r.kind AS kind FROM predictions p LEFT JOIN runs r ON p.run_id = r.run_id "
            f"{where} ORDER BY p.created_at, p.prediction_id",
            params,
        )
        df = decode_json_columns(df, PREDICTIONS)
        return _expand(df) if expand_extra else df

    def done_instances(self, run_id: str, model: str) -> set[str]:
        """Instance ids that already have a prediction for (run, model): what a resumed run can skip."""
        with self.session() as con:
            rows = con.execute(
                "SELECT DISTINCT instance_id FROM predictions WHERE run_id = ? AND model = ? "
                "AND instance_id IS NOT NULL",
                [run_id, model],
            ).fetchall()
        return {r[0] for r in rows}

    def counts(self) -> dict[str, int]:
        """Row count of every table (handy for status lines and tests)."""
        with self.session() as con:
            tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
            return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in sorted(tables)}

    # ---- JSONL import (files written by RecordWriter) --------------------------------------------

    def import_jsonl(self, path: str | os.PathLike) -> dict[str, int]:
        """Import one JSONL results file; idempotent. Raises StoreImportError (after importing every good
        line) when some lines are malformed, naming the file and line numbers."""
        return importer.import_jsonl(self, Path(path))

    def import_results_dir(self, folder: str | os.PathLike = "results") -> dict:
        """Import every *.jsonl and *.jsonl.gz under `folder` (relative paths: current folder, else the repo root)."""
        folder = Path(folder)
        if not folder.is_absolute() and not folder.exists():
            folder = REPO_ROOT / folder
        return importer.import_dir(self, folder)


def _expand(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "extra" not in df.columns:
        return df
    extra = pd.DataFrame([e if isinstance(e, dict) else {} for e in df["extra"]], index=df.index)
    extra = extra[[c for c in extra.columns if c not in df.columns]]
    return pd.concat([df, extra], axis=1) if len(extra.columns) else df


__all__ = ["Store", "open_store", "default_db_path"]
