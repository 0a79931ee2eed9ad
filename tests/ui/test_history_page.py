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
    from pages.components.fmt import exportable, parquet_bytes

    df = pd.DataFrame({"model": ["a", "b"], "ttft_ms": [1.5, None], "extra": [{"k": 1}, None]})
    back = pd.read_parquet(io.BytesIO(parquet_bytes(df)))
    assert list(back["model"]) == ["a", "b"] and back["ttft_ms"].iloc[0] == 1.5
    assert json.loads(back["extra"].iloc[0]) == {"k": 1} and pd.isna(back["extra"].iloc[1])
    csv = pd.read_csv(io.StringIO(exportable(df).to_csv(index=False)))
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


# ---------------------------------------------------------------- Experiments tab
SCORES = {  # run -> (instance, model) -> score; run "b" fixes k=0/q=1 and breaks k=2/q=0 for toy-mamba
    "a": {("k=0/q=0", "toy-mamba"): 1, ("k=0/q=1", "toy-mamba"): 0, ("k=2/q=0", "toy-mamba"): 1,
          ("k=2/q=1", "toy-mamba"): 1, ("k=0/q=0", "toy-transformer"): 1, ("k=0/q=1", "toy-transformer"): 0,
          ("k=2/q=0", "toy-transformer"): 0, ("k=2/q=1", "toy-transformer"): 1},
}
SCORES["b"] = {**SCORES["a"], ("k=0/q=1", "toy-mamba"): 1, ("k=2/q=0", "toy-mamba"): 0}


def _fewshot_run(store, scores: dict, device: str = "cpu") -> str:
    """A fewshot run as the runner stores it: predictions, per-instance efficiency rows (with a device) and
    aggregates (no device) of the primary filter per model and k."""
    models = sorted({m for _, m in scores})
    run = store.start_run("experiment-fewshot", {"experiment": "fewshot", "models": models, "n": 2, "seed": 0,
                                                 "task": "arbitrary", "sweep": {"k": [0, 2]}}, {"device": device})
    preds, meas = [], []
    for (inst, model), score in scores.items():
        k = int(inst.split("/")[0][2:])
        params = {"k": k, "query": int(inst[-1]), "task": "fewshot-arbitrary", "prompt_tokens": 20}
        preds.append({"instance_id": inst, "model": model, "prompt": f"prompt {inst}", "output": " yes",
                      "extracted": "yes" if score else "no", "reference": "yes", "score": float(score),
                      "params": params, "extra": {"scores": {"acc": float(score)}}})
        meas.append({"model": model, "device": device, "prompt_tokens": 20, "new_tokens": 0, "total_ms": 5.0,
                     "extra": {"instance_id": inst, "params": params, "experiment": "fewshot"}})
    for model in models:
        for k in (0, 2):
            vals = [s for (inst, m), s in scores.items() if m == model and inst.startswith(f"k={k}/")]
            meas.append({"model": model, "metric": "accuracy[acc]", "value": sum(vals) / len(vals), "n": len(vals),
                         "ci_low": 0.1, "ci_high": 0.9, "extra": {"task": "fewshot-arbitrary", "filter": "acc",
                                                                   "params": {"k": k}, "primary": True}})
    store.add_predictions(run, preds)
    store.add_measurements(run, meas)
    store.finish_run(run, "completed")
    return run


def _fill_experiments(db: Path) -> tuple[str, str]:
    from store import open_store

    store = open_store(str(db))
    a = _fewshot_run(store, SCORES["a"])
    b = _fewshot_run(store, SCORES["b"])
    bench = store.start_run("bench", {}, {"device": "cuda"})
    store.add_measurements(bench, _rows("toy-mamba", "mamba", "cuda", [64]))
    store.finish_run(bench)
    return a, b


def _chart(at: AppTest, title_start: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if s["layout"]["title"]["text"].startswith(title_start)]
    assert len(found) == 1, [s["layout"]["title"]["text"] for s in specs]
    return found[0]


def _arr(v) -> list:
    """A plotly JSON array: a list, or (plotly 6) a base64 typed array."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _changed(at: AppTest) -> pd.DataFrame | None:
    tables = [d.value for d in at.dataframe if "change" in d.value.columns]
    return tables[0] if tables else None


def test_experiment_accuracy_over_time_and_changed_instances(arena_env):
    _fill_experiments(arena_env / "arena.duckdb")
    at = _page()
    assert not at.error, [e.value for e in at.error]
    assert [t.label for t in at.tabs] == ["Measurements", "Experiments"]
    assert at.selectbox(key="history_exp_task").options == ["fewshot-arbitrary"]
    spec = _chart(at, "Accuracy over time · fewshot-arbitrary")
    assert spec["layout"]["yaxis"]["title"]["text"] == "accuracy"
    traces = spec["data"]
    assert len(traces) == 4  # 2 models x 2 sweep points, each a line over the two runs
    assert all(len(t["x"]) == 2 and len(_arr(t["error_y"]["array"])) == len(_arr(t["error_y"]["arrayminus"])) == 2
               for t in traces)
    assert {t["legendgroup"].split(",")[0] for t in traces} == {"toy-mamba", "toy-transformer"}

    assert at.selectbox(key="history_cmp_kind").options == ["fewshot"]  # shown by experiment name
    changed = _changed(at)
    assert changed is not None
    assert sorted(zip(changed["instance_id"], changed["model"], changed["change"], strict=True)) == [
        ("k=0/q=1", "toy-mamba", "fixed"), ("k=2/q=0", "toy-mamba", "broke")]
    summary = [d.value for d in at.dataframe if "instances in both" in d.value.columns][0]
    assert dict(zip(summary["model"], summary["changed"], strict=True)) == {"toy-mamba": 2, "toy-transformer": 0}


def test_experiment_tab_follows_the_page_filters(arena_env):
    _, b = _fill_experiments(arena_env / "arena.duckdb")
    at = _page()
    at.multiselect(key="history_model").set_value(["toy-transformer"]).run()
    traces = _chart(at, "Accuracy over time")["data"]
    assert {t["legendgroup"].split(",")[0] for t in traces} == {"toy-transformer"}

    at.multiselect(key="history_model").set_value([]).run()
    at.multiselect(key="history_device").set_value(["cpu"]).run()  # aggregates have no device: their run's counts
    assert len(_chart(at, "Accuracy over time")["data"]) == 4
    at.multiselect(key="history_device").set_value([]).run()

    at.multiselect(key="history_run").set_value([b]).run()  # one run: a single point per line, nothing to compare
    assert all(len(t["x"]) == 1 for t in _chart(at, "Accuracy over time")["data"])
    assert _changed(at) is None
    assert any("Run this experiment twice" in c.value for c in at.caption)

    at.multiselect(key="history_run").set_value([]).run()
    at.multiselect(key="history_kind").set_value(["bench"]).run()
    assert not [c for c in at.get("plotly_chart") if "Accuracy" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    assert any("No experiment accuracy matches these filters" in i.value for i in at.info)
    assert any("nothing to compare" in c.value for c in at.caption)


def test_toy_world_eval_rows_plot_with_their_confidence_interval(arena_env):
    from store import open_store

    store = open_store(str(arena_env / "arena.duckdb"))
    run = store.start_run("toyworld_eval", {"seed": 0}, {"device": "NVIDIA H100 80GB HBM3"}, name="toyworld eval")
    store.add_measurements(run, [
        {"model": "toy-mamba", "metric": "accuracy", "value": 0.3, "n": 100, "ci_low": 0.22, "ci_high": 0.4,
         "task": "fewshot", "fewshot_task": "workplace", "k": k, "correct": 30, "chance": 0.06, "seed": 0}
        for k in (0, 4)] + [
        {"model": "toy-mamba", "metric": "perplexity", "value": 6.1, "n": 100, "ci_low": 5.5, "ci_high": 6.7,
         "task": "perplexity"}])
    store.finish_run(run)
    at = _page()
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="history_exp_task").options == ["fewshot-workplace"]  # perplexity is no accuracy
    traces = _chart(at, "Accuracy over time · fewshot-workplace")["data"]
    assert len(traces) == 2 and [round(y, 3) for t in traces for y in _arr(t["y"])] == [0.3, 0.3]
    assert all(abs(_arr(t["error_y"]["array"])[0] - 0.1) < 1e-9 and abs(_arr(t["error_y"]["arrayminus"])[0] - 0.08) < 1e-9
               for t in traces)
    at.multiselect(key="history_device").set_value(["NVIDIA H100 80GB HBM3"]).run()  # the run's meta device
    assert len(_chart(at, "Accuracy over time")["data"]) == 2
