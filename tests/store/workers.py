"""Child-process bodies for the concurrency tests (top-level functions: multiprocessing uses spawn)."""

import os
import time


def write_rows(db: str, worker: int, n_batches: int, batch_size: int) -> str:
    """One run with n_batches batches of measurements and of predictions; returns the run id."""
    from store import open_store

    st = open_store(db, lock_timeout=60)
    run_id = st.start_run("stress", {"worker": worker}, {"pid": os.getpid()})
    for b in range(n_batches):
        rows = [{"model": f"w{worker}", "metric": "i", "value": b * batch_size + i} for i in range(batch_size)]
        assert st.add_measurements(run_id, rows) == batch_size
        preds = [{"instance_id": f"{worker}-{b}-{i}", "model": f"w{worker}", "output": "x"} for i in range(batch_size)]
        assert st.add_predictions(run_id, preds) == batch_size
    st.finish_run(run_id, "completed", {"batches": n_batches})
    return run_id


def read_until(db: str, stop, out, ready=None) -> None:
    """Read counts in a loop until `stop` is set; report (reads, max measurements seen, errors). `ready` is
    set after the first read, so a test can start its writers once this reader is really reading."""
    from store import open_store

    st = open_store(db, lock_timeout=60)
    reads, seen, errors = 0, 0, []
    while not stop.is_set():
        try:
            n = len(st.measurements(kinds="stress"))
            if n < seen:
                errors.append(f"row count went down from {seen} to {n}")
            seen = max(seen, n)
            st.runs()
            reads += 1
        except Exception as e:  # reported to the test, which fails on any
            errors.append(repr(e))
        finally:
            if ready is not None:  # after the first read (or its error, which the test then reports)
                ready.set()
    out.put((reads, seen, errors))


def insert_forever(db: str, run_id: str, progress: str, batch: int) -> None:
    """Insert batches of `batch` measurements forever, one transaction each; after each commit returns,
    append the batch number to `progress`."""
    from store import open_store

    st = open_store(db, lock_timeout=60)
    with open(progress, "a", buffering=1) as f:
        i = 0
        while True:
            rows = [{"measurement_id": f"b{i:05d}-{j:05d}", "model": "k", "value": j, "extra": {"pad": "x" * 100}}
                    for j in range(batch)]
            st.add_measurements(run_id, rows)
            f.write(f"b{i:05d}\n")  # only after the commit returned
            i += 1


def hold_duckdb(db: str, ready, release) -> None:
    """An external program that keeps the database open without our lock (like a DuckDB shell)."""
    import duckdb

    con = duckdb.connect(db)
    ready.set()
    release.wait(60)
    con.close()


def hold_app_lock(db: str, ready, release) -> None:
    """Another process of the app stuck while holding the store's lock."""
    from filelock import FileLock

    with FileLock(db + ".lock"):
        ready.set()
        release.wait(60)
    time.sleep(0.01)
