"""Short-lived DuckDB connections behind a cross-process lock (the store's concurrency design).

DuckDB lets one process at a time open a database file (a second process fails at once with "Could
not set lock on file", even read-only). So nobody keeps a connection open: every store call

  1. takes this process's lock for the file (threads of the dashboard queue here, no polling),
  2. takes the cross-process lock `<db>.lock` (filelock, fcntl.flock: released by the kernel if the
     holder dies, so a SIGKILLed writer never leaves a stale lock), politely (see _acquire_politely),
  3. connects, runs its statements in one transaction, commits, closes (close checkpoints the WAL),
  4. releases both locks.

Damage: before the first connection of a Connector every block of the file is checked against DuckDB's
checksums, and before each later one its headers and length (store/integrity.py). A file that fails is never
opened (DuckDB would replay its log and checkpoint into it): StoreDamagedError says to move it away, and
every later call says the same until the file at the path changes. DuckDB errors that report corruption
while a statement runs are turned into the same error.

All waits share one deadline (`lock_timeout`). If another program that does not use our lock (a
DuckDB shell, a notebook) holds the file, connecting is retried with backoff until the deadline,
then StoreLockedError names that program and PID as DuckDB reported them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from store import integrity
from store.errors import StoreDamagedError, StoreError, StoreLockedError

_LOG = logging.getLogger(__name__)
_REGISTRY_LOCK = threading.Lock()
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_FILE_LOCKS: dict[str, FileLock] = {}
_ACTIVE = threading.local()  # per thread: db path -> open connection (makes sessions re-entrant)


def _reset_after_fork() -> None:  # a forked child must not inherit locks held by the parent's threads
    global _REGISTRY_LOCK, _ACTIVE
    _REGISTRY_LOCK = threading.Lock()
    _PROCESS_LOCKS.clear()
    _FILE_LOCKS.clear()
    _ACTIVE = threading.local()


os.register_at_fork(after_in_child=_reset_after_fork)

POLL_S = 0.01  # how often a waiting process retries the lock
MAX_YIELD_S = 0.5  # longest a process steps back for announced waiters before taking its turn
_DUCKDB_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")
# what DuckDB says when a block it reads is damaged or missing (the file was cut or overwritten meanwhile)
_DAMAGE_RE = re.compile(r"Corrupt database file|checksum|Could not read enough bytes|"
                        r"read past the end|INTERNAL Error: Failed to load metadata", re.IGNORECASE)


def _locks_for(path: Path) -> tuple[threading.RLock, FileLock]:
    key = str(path)
    with _REGISTRY_LOCK:
        if key not in _PROCESS_LOCKS:
            _PROCESS_LOCKS[key] = threading.RLock()
            _FILE_LOCKS[key] = FileLock(str(path) + ".lock", thread_local=False, poll_interval=POLL_S)
        return _PROCESS_LOCKS[key], _FILE_LOCKS[key]


def _describe_pid(pid: int) -> str:
    try:
        import psutil

        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()[:4]) or proc.name()
        return f"PID {pid} ({cmd})"
    except Exception:  # psutil missing, process gone or not ours to inspect
        return f"PID {pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flock_holders(lock_path: Path) -> list[int]:
    """PIDs holding a flock on `lock_path`, read from /proc/locks (Linux); [] where unknown."""
    try:
        st = os.stat(lock_path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK":
            dev_ino = parts[5].split(":")
            if len(dev_ino) == 3 and dev_ino[2] == str(st.st_ino) and parts[4].isdigit():
                pids.append(int(parts[4]))
    return sorted(set(pids))


def check_database_file(path: Path) -> None:
    """Refuse anything that is not a DuckDB file (never overwrite it); remove a zero-byte file."""
    if path.is_dir():
        raise StoreError(f"The results database path {path} is a folder; point SSM_ARENA_DB at a file.")
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:  # e.g. `touch`ed: nothing to lose, DuckDB refuses empty files, so let it create one
        path.unlink()
        return
    with open(path, "rb") as f:
        head = f.read(16)
    if head[8:12] != b"DUCK":
        raise StoreError(
            f"{path} is not a DuckDB database (it does not start with DuckDB's header), so the results "
            "store will not touch it. Move that file away or set SSM_ARENA_DB to another path."
        )


def damaged_message(path: Path, damage: str) -> str:
    wal = Path(str(path) + ".wal")
    also = f" together with {wal.name}" if wal.exists() else ""
    return (
        f"The results database {path} is damaged: {damage}. The store will neither read nor write it and has "
        f"left it as it is. Move it away{also} (for example `mv {path} {path}.damaged`) and start again: a new "
        "store is created, and the results committed under results/ are imported into it again."
    )


@contextmanager
def registered(con, name: str, table):
    """Expose an Arrow table/DataFrame to SQL as `name` for the duration of the block."""
    con.register(name, table)
    try:
        yield name
    finally:
        try:
            con.unregister(name)
        except duckdb.Error:
            pass  # the transaction failed already; closing the connection drops the view anyway


class Connector:
    """Opens one short-lived connection per session; see the module docstring."""

    def __init__(self, path: Path, lock_timeout: float, on_create=None):
        self.path = path
        self.lock_path = Path(str(path) + ".lock")
        self.lock_timeout = lock_timeout
        self.on_create = on_create  # called with the connection when a session had to create the file
        self._verified: tuple | None = None  # (device, inode) of the file whose every block was checked
        self._damaged: tuple[tuple, str] | None = None  # (file identity, sentence) of a file that failed

    @contextmanager
    def session(self):
        """Yield a connection inside a transaction; commit on success, roll back on error."""
        active = _ACTIVE.__dict__.setdefault("cons", {})
        key = str(self.path)
        if key in active:  # nested call in the same thread: join the open transaction
            yield active[key]
            return
        deadline = time.monotonic() + self.lock_timeout
        plock, flock = _locks_for(self.path)
        if not plock.acquire(timeout=self.lock_timeout):
            raise StoreLockedError(
                f"Other threads of this process kept the results database {self.path} busy for more than "
                f"{self.lock_timeout:g} s. Try again in a moment."
            )
        try:
            try:
                if not self.path.parent.is_dir():  # the data folder was removed while the app ran
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._acquire_politely(flock, deadline)
            except Timeout:
                raise StoreLockedError(self._app_lock_message()) from None
            except OSError as e:
                raise StoreError(
                    f"Cannot create the lock file {self.lock_path} ({e.strerror}); the folder of the results "
                    "database must exist and be writable."
                ) from None
            try:
                created = not self.path.exists() or self.path.stat().st_size == 0
                con = self._connect(deadline)
                active[key] = con
                try:
                    con.begin()
                    if created and self.on_create is not None:  # e.g. the file was deleted while we ran
                        self.on_create(con)
                    yield con
                    con.commit()
                except BaseException as e:
                    try:
                        con.rollback()
                    except duckdb.Error:
                        pass  # no open transaction (it failed already)
                    if isinstance(e, duckdb.Error) and _DAMAGE_RE.search(str(e)):
                        raise self._mark_damaged(f"DuckDB reported {e}") from None
                    if isinstance(e, duckdb.Error):
                        raise StoreError(
                            f"The results database {self.path} could not complete the operation "
                            f"(nothing was written): {e}"
                        ) from e
                    raise
                finally:
                    del active[key]
                    try:
                        con.close()  # checkpoints the WAL; if that fails the WAL stays and is replayed later
                    except duckdb.Error as e:
                        _LOG.warning("closing %s failed (its WAL is replayed on the next open): %s", self.path, e)
            finally:
                flock.release()
        finally:
            plock.release()

    # Fairness. flock has no queue: a process that releases and re-takes the lock at once (a busy
    # dashboard) can starve a polling one (a CLI writer). So a process that had to wait leaves a marker
    # file `<db>.lock.wait-<pid>-<n>` while it polls, and a process about to take the lock first steps
    # back (up to MAX_YIELD_S) while other live processes have markers.

    def _acquire_politely(self, flock: FileLock, deadline: float) -> None:
        self._yield_to_waiters(deadline)
        try:
            flock.acquire(timeout=0)
            return
        except Timeout:
            pass
        marker = self.lock_path.with_name(f"{self.lock_path.name}.wait-{os.getpid()}-{threading.get_ident()}")
        try:
            marker.touch()
        except OSError:
            marker = None
        try:
            flock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)

    def _other_waiters(self) -> list[Path]:
        prefix = self.lock_path.name + ".wait-"
        found = []
        try:
            entries = list(os.scandir(self.lock_path.parent))
        except OSError:
            return []
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-")[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            if not _pid_alive(int(pid)):  # left by a killed waiter
                Path(entry.path).unlink(missing_ok=True)
                continue
            found.append(Path(entry.path))
        return found

    def _yield_to_waiters(self, deadline: float) -> None:
        stop = min(deadline, time.monotonic() + MAX_YIELD_S)
        while time.monotonic() < stop and self._other_waiters():
            time.sleep(POLL_S)

    def _identity(self) -> tuple:
        st = self.path.stat()
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def _mark_damaged(self, damage: str) -> StoreDamagedError:
        msg = damaged_message(self.path, damage)
        try:
            self._damaged = (self._identity(), msg)
        except OSError:  # gone meanwhile: the next session starts afresh
            self._damaged = None
        self._verified = None
        return StoreDamagedError(msg)

    def check_integrity(self) -> None:
        """Refuse a damaged file before DuckDB touches it (module docstring); called under the locks."""
        check_database_file(self.path)
        if not self.path.exists():
            return  # DuckDB creates it
        ident = self._identity()
        if self._damaged is not None and self._damaged[0] == ident:
            raise StoreDamagedError(self._damaged[1])
        try:
            if self._verified == ident[:2]:
                damage = integrity.check_headers(self.path)
            else:
                damage = integrity.verify(self.path)
        except OSError as e:
            raise StoreError(f"Cannot read the results database {self.path} ({e.strerror}).") from None
        if damage:
            raise self._mark_damaged(damage)
        self._verified = ident[:2]

    def _connect(self, deadline: float):
        self.check_integrity()
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as e:
                msg = str(e)
                if "Could not set lock" not in msg:
                    if _DAMAGE_RE.search(msg):
                        raise self._mark_damaged(f"DuckDB reported {msg}") from None
                    raise self._open_error(e) from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreLockedError(self._external_lock_message(msg)) from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.5)
            except duckdb.Error as e:
                if _DAMAGE_RE.search(str(e)):
                    raise self._mark_damaged(f"DuckDB reported {e}") from None
                raise self._open_error(e) from None

    def _open_error(self, e: Exception) -> StoreError:
        wal = Path(str(self.path) + ".wal")
        hint = (
            f" If DuckDB failed while replaying its log, moving {wal.name} aside opens the last checkpoint "
            "(losing writes made after it);" if wal.exists() else ""
        )
        return StoreError(
            f"Could not open the results database {self.path}: {e}.{hint} If the file is damaged, move it "
            "away: results committed as JSONL under results/ can be imported again."
        )

    def _external_lock_message(self, duckdb_msg: str) -> str:
        m = _DUCKDB_LOCK_RE.search(duckdb_msg)
        holder = f"{m['exe']} (PID {m['pid']})" if m else "another program"
        return (
            f"The results database {self.path} is held open by {holder}, which does not share the store's "
            f"lock; waited {self.lock_timeout:g} s. Close that program (a DuckDB shell or notebook?) and "
            "try again."
        )

    def _app_lock_message(self) -> str:
        pids = [p for p in flock_holders(self.lock_path) if p != os.getpid()]
        who = ", ".join(_describe_pid(p) for p in pids) if pids else "another process of this app"
        return (
            f"The results database {self.path} is busy: {who} has held its lock ({self.lock_path.name}) for "
            f"more than {self.lock_timeout:g} s. Try again when it finishes, or stop it if it is stuck."
        )
