"""Real processes and threads using one database file at the same time."""

import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from store import StoreLockedError, open_store
from tests.store import workers

CTX = mp.get_context("spawn")


def test_processes_write_while_another_reads(store, db_path):
    n_writers, n_batches, batch = 3, 6, 5
    stop, out, ready = CTX.Event(), CTX.Queue(), CTX.Event()
    reader = CTX.Process(target=workers.read_until, args=(str(db_path), stop, out, ready))
    reader.start()
    # a spawned reader takes seconds to import on a busy 2-core machine: start the writers once it reads
    # (without this wait the writers could finish first and the reader report 0 reads)
    assert ready.wait(120), "the reader process never completed a first read"
    done = threading.Event()

    def dashboard_thread():  # this process reads from threads meanwhile, like dashboard sessions
        reads = 0
        while not done.is_set():
            store.measurements(kinds="stress")
            reads += 1
        return reads

    with ThreadPoolExecutor(2) as threads:
        thread_reads = [threads.submit(dashboard_thread) for _ in range(2)]
        try:
            with CTX.Pool(n_writers) as pool:
                args = [(str(db_path), w, n_batches, batch) for w in range(n_writers)]
                run_ids = pool.starmap(workers.write_rows, args)
        finally:  # stop the readers even when a writer failed
            done.set()
            stop.set()
        assert all(f.result() > 0 for f in thread_reads)  # .result() re-raises any error of a thread
    reads, _seen, errors = out.get(timeout=60)
    reader.join(30)
    assert errors == []
    assert reads > 0
    # this process reads too, while nothing else runs, and counts every row
    m = store.measurements(kinds="stress")
    assert len(m) == n_writers * n_batches * batch
    assert len(store.predictions(kind="stress")) == n_writers * n_batches * batch
    for w, run_id in enumerate(run_ids):
        mine = m[m.run_id == run_id]
        assert sorted(mine.value) == list(range(n_batches * batch))
        assert set(mine.model) == {f"w{w}"}
    runs = store.runs(kind="stress")
    assert set(runs.run_id) == set(run_ids) and set(runs.status) == {"completed"}


def test_threads_of_one_process_share_the_store(db_path):
    stores = [open_store(db_path, lock_timeout=30) for _ in range(2)]  # like two dashboard sessions
    run_id = stores[0].start_run("threads", {}, {})

    def work(i):
        st = stores[i % 2]
        st.add_measurements(run_id, [{"model": f"t{i}", "value": j} for j in range(4)])
        return len(st.measurements(run_ids=run_id))

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(work, range(16)))
    assert min(seen) >= 4
    assert len(stores[1].measurements(run_ids=run_id)) == 16 * 4


@pytest.mark.parametrize("batch,wait_for", [(1, 20), (3000, 3)], ids=["small-commits", "big-batches"])
def test_sigkill_mid_write_keeps_every_committed_row(store, db_path, tmp_path, batch, wait_for):
    run_id = store.start_run("kill", {}, {})
    progress = tmp_path / "committed.txt"
    child = CTX.Process(target=workers.insert_forever, args=(str(db_path), run_id, str(progress), batch))
    child.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # let it commit a few times, then kill it mid-loop
        if progress.exists() and progress.read_text().count("\n") >= wait_for:
            break
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    committed = set(progress.read_text().split())
    assert len(committed) >= wait_for

    reopened = open_store(db_path, lock_timeout=10)
    ids = reopened.measurements(run_ids=run_id).measurement_id
    per_batch = ids.str.slice(0, 6).value_counts()
    assert committed <= set(per_batch.index)  # every committed batch survived ...
    assert (per_batch == batch).all()  # ... whole: no batch is half there
    assert len(set(per_batch.index) - committed) <= 1  # at most the one whose commit returned as the kill landed
    assert reopened.add_measurements(run_id, [{"model": "after", "value": 1}]) == 1  # still takes writes


def _start_holder(target, db_path):
    ready, release = CTX.Event(), CTX.Event()
    proc = CTX.Process(target=target, args=(str(db_path), ready, release))
    proc.start()
    assert ready.wait(60), "holder process did not start"
    return proc, release


@pytest.mark.parametrize("holder", [workers.hold_duckdb, workers.hold_app_lock], ids=["duckdb-shell", "app-lock"])
def test_locked_by_another_process_raises_within_timeout(store, db_path, holder):
    proc, release = _start_holder(holder, db_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as err:
            open_store(db_path, lock_timeout=1.0)
        waited = time.monotonic() - t0
        assert 0.9 <= waited < 5
        msg = str(err.value)
        assert str(db_path) in msg and str(proc.pid) in msg
    finally:
        release.set()
        proc.join(30)
    assert len(open_store(db_path, lock_timeout=5).runs()) == 0  # usable again once the holder is gone


def test_a_process_steps_back_for_announced_waiters_but_not_for_dead_ones(store, db_path):
    from store.connection import MAX_YIELD_S

    dead = CTX.Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join(30)
    stale = db_path.with_name(f"{db_path.name}.lock.wait-{dead.pid}-1")
    stale.touch()
    store.runs()  # a marker of a dead process is removed, not waited for
    assert not stale.exists()

    live = db_path.with_name(f"{db_path.name}.lock.wait-{os.getppid()}-1")  # a live process "waiting"
    live.touch()
    t0 = time.monotonic()
    store.runs()
    assert time.monotonic() - t0 >= MAX_YIELD_S  # it gave the waiter its turn, bounded by MAX_YIELD_S
    live.unlink()
