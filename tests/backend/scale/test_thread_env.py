"""A shard sizes numba's thread pool like torch's (Ray gives a task OMP_NUM_THREADS = its CPUs): numba's idle
OpenMP threads, one per core, starved the shard on the other core (two SSM shards: 450 vs 61 ms an instance)."""

from __future__ import annotations

import os

from backend.scale import cluster as C


def test_numba_threads_follow_the_shard_cpus(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert C.thread_env() == {"NUMBA_NUM_THREADS": "3"}
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert C.thread_env() == {"NUMBA_NUM_THREADS": "1"}
    with C.shard_env({"SSM_ARENA_X": "1"}):
        assert os.environ["NUMBA_NUM_THREADS"] == "1" and os.environ["SSM_ARENA_X"] == "1"
    assert "NUMBA_NUM_THREADS" not in os.environ and "SSM_ARENA_X" not in os.environ


def test_a_users_numba_setting_wins(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert C.thread_env() == {}
    with C.shard_env({}):
        assert os.environ["NUMBA_NUM_THREADS"] == "2"
