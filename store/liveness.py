"""Runs whose process died: `start_run` records its owner (host, PID, process start time); when a store is
opened, a `running` run whose owner on this host is gone (no such PID, or a PID reused by a process that started
later) becomes `interrupted`, with the time it was found and a sentence in its summary. Runs owned by another
host (a GPU machine, a colleague's copy) and runs without an owner (JSONL imports, older rows) are left alone:
from here nobody can tell whether they still run.
"""

from __future__ import annotations

import json
import os
import socket

import psutil

from store.records import utc_now

_START_SLACK_S = 1.0  # psutil rounds a process's start time; a reused PID starts much later than this


def current_owner() -> dict:
    """The owner recorded with a run started by this process."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": round(psutil.Process().create_time(), 2)}


def owner_alive(owner: dict) -> bool:
    """True when the process that owns a run still runs on this host (or cannot be checked from here)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        proc = psutil.Process(int(owner["pid"]))
        started = proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except (psutil.AccessDenied, KeyError, TypeError, ValueError):
        return True  # not ours to inspect, or an owner written by another version: leave the run alone
    if owner.get("started") is None:
        return True
    return abs(started - float(owner["started"])) <= _START_SLACK_S


def mark_interrupted(con) -> list[str]:
    """Inside the caller's transaction: mark runs of dead processes `interrupted`; returns their ids."""
    rows = con.execute("SELECT run_id, owner, summary FROM runs WHERE status = 'running' AND owner IS NOT NULL"
                       ).fetchall()
    gone = []
    now = utc_now()
    for run_id, owner, summary in rows:
        try:
            owner = json.loads(owner) if isinstance(owner, str) else owner
        except ValueError:
            continue
        if not isinstance(owner, dict) or owner_alive(owner):
            continue
        note = {"interrupted": f"The process that ran it (PID {owner.get('pid')} on {owner.get('host')}) ended "
                               "before the run finished; its rows up to then are kept."}
        try:
            old = json.loads(summary) if isinstance(summary, str) else (summary or {})
        except ValueError:
            old = {}
        merged = {**old, **note} if isinstance(old, dict) else note
        con.execute("UPDATE runs SET status = 'interrupted', finished_at = ?, summary = ? WHERE run_id = ? "
                    "AND status = 'running'", [now, json.dumps(merged), run_id])
        gone.append(run_id)
    return gone
