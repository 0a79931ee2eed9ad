"""History page through AppTest: empty store, stored rows, filters, plots and exports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "history.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _rows(model: str, family: str, device: str, lengths) -> list[dict]:
    return [{"model": model, "family": family, "device": device, "dtype": "float32", "batch": 1,
             "prompt_tokens": n, "new_tokens": 16, "path": "reference", "ttft_ms": 1.0 + n / 100,
             "prefill_ms": n / 100, "tpot_ms": 2.0, "tpot_p90_ms": 2.5, "decode_tok_s": 500.0 - n / 10,
             "total_ms": 40.0, "peak_mem_bytes": 2**20 * (10 + n // 64), "peak_mem_kind": "cpu_rss",
             "cache_bytes": 4096, "cache_kind": "ssm_state" if family != "transformer" else "kv",
             "extra": {"note": "test"}} for n in lengths]


def _fill(db: Path) -> None:
    from store import open_store

    store = open_store(str(db))
    run = store.start_run("bench", {"lengths": [64, 256]}, {"device": "cpu"}, name="sweep")
    store.add_measurements(run, _rows("toy-mamba", "mamba", "cpu", [64, 256]))
    store.add_measurements(run, _rows("toy-transformer", "transformer", "cpu", [64, 256]))
    store.finish_run(run)
    gen = store.start_run("generate", {}, {"device": "cpu"})
    store.add_measurements(gen, _rows("toy-mamba2", "mamba2", "cpu", [12]))
    store.finish_run(gen)


def test_empty_store_says_how_to_import(arena_env):
    at = _page()
    assert not at.error
    assert "No measurements are stored yet" in at.info[0].value
    assert "python -m backend import-results" in at.code[0].value


def test_rows_give_plots_tables_filters_and_exports(arena_env):
    _fill(arena_env / "arena.duckdb")
    at = _page()
    assert not at.error, [e.value for e in at.error]
    assert "5 of 5 measurement rows match" in at.caption[0].value
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert sorted(titles) == sorted(["Time to first token (ms)", "Time per output token, median (ms)", "Decode tokens/s",
                                     "Peak memory (MiB)"])
    downloads = at.get("download_button")
    assert len(downloads) == 2
    assert {d.proto.label for d in downloads} == {"Export CSV", "Export Parquet"}

    at.multiselect(key="history_kind").set_value(["bench"]).run()
    assert "4 of 5 measurement rows match" in at.caption[0].value
    at.multiselect(key="history_model").set_value(["toy-mamba"]).run()
    assert "2 of 5 measurement rows match" in at.caption[0].value
    runs_table = at.dataframe[-1].value
    assert list(runs_table["kind"]) == ["bench"] and list(runs_table["name"]) == ["sweep"]


def test_exports_round_trip_with_json_cells(arena_env):
    from pages import ui

    df = pd.DataFrame({"model": ["a", "b"], "ttft_ms": [1.5, None], "extra": [{"k": 1}, None]})
    back = pd.read_parquet(io.BytesIO(ui.parquet_bytes(df)))
    assert list(back["model"]) == ["a", "b"] and back["ttft_ms"].iloc[0] == 1.5
    assert json.loads(back["extra"].iloc[0]) == {"k": 1} and pd.isna(back["extra"].iloc[1])
    csv = pd.read_csv(io.StringIO(ui.exportable(df).to_csv(index=False)))
    assert json.loads(csv["extra"].iloc[0]) == {"k": 1}


def test_first_start_imports_committed_results(arena_env):
    from store import RecordWriter

    w = RecordWriter(arena_env / "results" / "bench_cpu.jsonl")
    run = w.start_run("bench", {}, {"device": "cpu"}, name="committed")
    w.add_measurements(run, _rows("toy-mamba", "mamba", "cpu", [32, 64, 128]))
    w.finish_run(run)
    at = _page()
    assert not at.error, [e.value for e in at.error]
    assert "3 of 3 measurement rows match" in at.caption[0].value


def test_a_malformed_committed_line_is_a_warning_and_the_good_rows_are_imported(arena_env):
    from store import RecordWriter

    path = arena_env / "results" / "bench_cpu.jsonl"
    w = RecordWriter(path)
    run = w.start_run("bench", {}, {"device": "cpu"})
    w.add_measurements(run, _rows("toy-mamba", "mamba", "cpu", [32, 64]))
    w.finish_run(run)
    with path.open("a") as f:
        f.write("{not json\n")
    at = _page()
    assert "2 of 2 measurement rows match" in at.caption[0].value
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "bench_cpu.jsonl" in warnings[0], warnings
