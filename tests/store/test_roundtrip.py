"""Writes come back from the readers with their values, types and filters."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from backend.generation.interface import GenMetrics
from store import StoreError


def _metrics(**kw) -> dict:
    base = dict(prompt_tokens=12, new_tokens=8, ttft_ms=5.5, prefill_ms=4.0, tpot_ms=1.25, tpot_p90_ms=2.0,
                decode_tok_s=800.0, total_ms=15.0, peak_mem_bytes=3 * 2**30, peak_mem_kind="cpu_rss",
                cache_bytes=4096, cache_kind="ssm_state", path="reference", device="cpu", dtype="float32")
    return GenMetrics(**{**base, **kw}).to_dict()


def test_run_lifecycle(store):
    meta = {"git_sha": "abc123", "versions": {"torch": "2.13"}, "device": "cpu", "hostname": "h",
            "models": ["a", "b"], "seeds": [0, 1]}
    run_id = store.start_run("bench", {"batch": [1, 4]}, meta, name="first")
    assert isinstance(run_id, str) and len(run_id) == 32
    row = store.runs().iloc[0]
    assert (row.kind, row["name"], row.status) == ("bench", "first", "running")
    assert row.config == {"batch": [1, 4]} and row.meta == meta
    assert pd.isna(row.finished_at) and row.summary is None
    store.finish_run(run_id, "cancelled", {"done": 3})
    row = store.runs().iloc[0]
    assert row.status == "cancelled" and row.summary == {"done": 3} and row.finished_at >= row.created_at


def test_finish_run_rejects_bad_status_and_unknown_run(store):
    run_id = store.start_run("bench", {}, {})
    with pytest.raises(StoreError, match="completed, cancelled, failed"):
        store.finish_run(run_id, "done")
    with pytest.raises(StoreError, match="start_run first"):
        store.finish_run("nope")
    with pytest.raises(StoreError, match="start_run first"):
        store.add_measurements("nope", [{"model": "m"}])


def test_measurements_round_trip_with_extra_and_numpy_values(store):
    run_id = store.start_run("bench", {}, {})
    rows = [
        {**_metrics(batch=4), "model": "mamba-s", "family": "mamba", "decode_tok_s_batch": 3200.0, "warmup": 2,
         "repeats": 5, "context_len": 512, "note": "x"},
        {"model": "gpt-s", "family": "transformer", "metric": "accuracy", "value": np.float32(0.5),
         "n": np.int64(40), "ci_low": 0.35, "ci_high": 0.65, "batch": 1.0, "extra": {"task": "qa"}},
    ]
    assert store.add_measurements(run_id, rows) == 2
    df = store.measurements()
    assert len(df) == 2
    a = df[df.model == "mamba-s"].iloc[0]
    assert (a.batch, a.prompt_tokens, a.peak_mem_bytes, a.cache_kind, a.path) == (4, 12, 3 * 2**30, "ssm_state",
                                                                                  "reference")
    assert a.tpot_ms == 1.25 and a.decode_tok_s_batch == 3200.0 and a.kind == "bench"
    assert a.extra == {"context_len": 512, "note": "x"}
    b = df[df.model == "gpt-s"].iloc[0]
    assert b.value == 0.5 and b.n == 40 and b.batch == 1 and b.extra == {"task": "qa"}
    wide = store.measurements(expand_extra=True)
    assert set(wide.columns) >= {"context_len", "note", "task"}


def test_bad_value_names_the_key_and_writes_nothing(store):
    run_id = store.start_run("bench", {}, {})
    with pytest.raises(StoreError, match="'batch'.*expected an integer"):
        store.add_measurements(run_id, [{"model": "ok", "batch": 1}, {"model": "bad", "batch": "four"}])
    with pytest.raises(StoreError, match="does not fit"):
        store.add_measurements(run_id, [{"model": "big", "batch": 2**40}])
    assert store.measurements().empty


def test_ids_given_by_the_caller_make_writes_idempotent(store):
    run_id = store.start_run("bench", {}, {})
    rows = [{"measurement_id": f"id{i}", "model": "m", "value": i} for i in range(3)]
    assert store.add_measurements(run_id, rows) == 3
    assert store.add_measurements(run_id, rows) == 0
    assert len(store.measurements()) == 3


def test_measurement_filters(store):
    old = datetime.now(UTC) - timedelta(days=2)
    r1 = store.start_run("bench", {}, {})
    r2 = store.start_run("longctx", {}, {})
    store.add_measurements(r1, [{"model": "a", "device": "cpu", "created_at": old},
                                {"model": "b", "device": "H100"}])
    store.add_measurements(r2, [{"model": "a", "device": "H100"}])
    m = store.measurements
    assert len(m()) == 3
    assert len(m(kinds="bench")) == 2 and len(m(kinds=["bench", "longctx"])) == 3
    assert set(m(models=["a"]).run_id) == {r1, r2}
    assert len(m(devices="H100")) == 2
    assert len(m(run_ids=[r2])) == 1
    yesterday = datetime.now(UTC) - timedelta(days=1)
    assert list(m(since=yesterday).model) == ["b", "a"]
    assert list(m(until=yesterday.isoformat()).model) == ["a"]
    assert len(m(kinds="bench", models="a", devices="cpu")) == 1
    assert m(kinds="nothing").empty and list(m(kinds="nothing").columns) == list(m().columns)


def test_predictions_and_done_instances(store):
    r1 = store.start_run("fewshot", {}, {})
    r2 = store.start_run("cot", {}, {})
    rows = [{"instance_id": f"q{i}", "model": "a", "prompt": "p", "output": "o", "extracted": "1",
             "reference": "1", "score": 1.0, "params": {"max_new_tokens": 8}, "shots": 2} for i in range(3)]
    assert store.add_predictions(r1, rows) == 3
    store.add_predictions(r1, [{"instance_id": "q9", "model": "b", "score": 0}])
    store.add_predictions(r2, [{"instance_id": 7, "model": "a"}])
    assert store.done_instances(r1, "a") == {"q0", "q1", "q2"}
    assert store.done_instances(r2, "a") == {"7"}
    assert store.done_instances(r1, "zzz") == set()
    p = store.predictions(run_id=r1, model="a")
    assert len(p) == 3 and p.iloc[0].params == {"max_new_tokens": 8} and p.iloc[0].extra == {"shots": 2}
    assert len(store.predictions(kind="cot")) == 1 and len(store.predictions()) == 5


def test_runs_filter_by_kind_newest_first(store):
    ids = [store.start_run(k, {}, {}) for k in ("bench", "fewshot", "bench")]
    assert list(store.runs(kind="bench").run_id) == [ids[2], ids[0]]
    assert len(store.runs()) == 3


def test_rows_read_back_from_a_dataframe_can_be_written_again(store):
    """Resuming code re-sends rows from DataFrame.to_dict(): NaN/NA/NaT/Timestamp must round-trip as nulls."""
    r1 = store.start_run("fewshot", {}, {})
    store.add_predictions(r1, [{"instance_id": "q1", "model": "a", "score": None, "prompt": "p"}])
    rows = store.predictions(run_id=r1).drop(columns=["prediction_id", "run_id", "kind"]).to_dict("records")
    rows[0]["when"] = pd.NaT
    r2 = store.start_run("fewshot", {}, {})
    assert store.add_predictions(r2, rows) == 1
    again = store.predictions(run_id=r2).iloc[0]
    assert again.output is None or pd.isna(again.output)
    assert pd.isna(again.score) and again.prompt == "p"
    assert again.created_at == store.predictions(run_id=r1).iloc[0].created_at
    assert again.extra == {"when": None}
