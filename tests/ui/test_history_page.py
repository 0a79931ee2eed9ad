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


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_rows_give_plots_tables_filters_and_exports(arena_env):
    _fill(arena_env / "arena.duckdb")
    at = _page()
    assert not at.error, [e.value for e in at.error]
    # by default: the newest run only (the generate run: one row), not every stored row
    assert at.radio(key="history_scope").value == "newest"
    assert "1 of 5 measurement rows match" in at.caption[0].value
    at.radio(key="history_scope").set_value("all").run()
    assert "5 of 5 measurement rows match" in at.caption[0].value
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    assert sorted(_titles(at)) == sorted(f"{t} · cpu" for t in [  # one device: named in the title
        "Time to first token (ms)", "Time per output token, median (ms)", "Decode tokens/s",
        "Peak memory of the process (MiB)"])
    spec = json.loads(charts[0].proto.spec)
    assert spec["layout"]["xaxis"]["type"] == "log" and spec["layout"]["yaxis"]["rangemode"] == "tozero"
    downloads = at.get("download_button")
    assert len(downloads) == 2
    assert {d.proto.label for d in downloads} == {"Export CSV", "Export Parquet"}

    at.multiselect(key="history_kind").set_value(["bench"]).run()
    assert "4 of 5 measurement rows match" in at.caption[0].value
    at.multiselect(key="history_model").set_value(["toy-mamba"]).run()
    assert "2 of 5 measurement rows match" in at.caption[0].value
    runs_table = at.dataframe[-1].value
    assert list(runs_table["kind"]) == ["bench"] and list(runs_table["name"]) == ["sweep"]


def test_devices_are_devices_and_each_gets_its_own_panel(arena_env):
    from store import open_store

    _fill(arena_env / "arena.duckdb")
    store = open_store(str(arena_env / "arena.duckdb"))
    gpu = store.start_run("bench", {}, {"device": "cuda"}, name="gpu")
    store.add_measurements(gpu, _rows("toy-mamba", "mamba", "NVIDIA H200", [64, 256]))
    store.finish_run(gpu)
    aot = store.start_run("kernel_aot", {}, {"device": "auto"})
    store.add_measurements(aot, [{"model": "selective_scan", "device": target, "metric": "registers", "value": 64.0}
                                 for target in ("cuda:80", "hip:gfx90a")])
    store.finish_run(aot)
    at = _page()
    assert at.multiselect(key="history_device").options == ["NVIDIA H200", "cpu"]  # no compile target
    at.radio(key="history_scope").set_value("all").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    panels = {a["text"] for a in spec["layout"]["annotations"]}
    assert {"cpu", "NVIDIA H200"} <= panels  # a CPU and a GPU never share an axis
    assert {t["xaxis"] for t in spec["data"]} == {"x", "x2"}


def test_the_legend_is_capped_and_the_rest_is_named(arena_env):
    from store import open_store

    store = open_store(str(arena_env / "arena.duckdb"))
    run = store.start_run("bench", {}, {"device": "cpu"}, name="many")
    for i in range(11):
        store.add_measurements(run, _rows(f"model-{i:02d}", "mamba", "cpu", [64] * (i + 1)))
    store.finish_run(run)
    at = _page()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len({t["name"] for t in spec["data"]}) == 8
    note = [c.value for c in at.caption if "more series are not drawn" in c.value]
    assert note and note[0].startswith("3 more series") and "model-00, model-01, model-02" in note[0]


def test_a_past_generation_shows_prompt_outputs_settings_and_metrics_and_a_failed_model(arena_env):
    from backend.generation.interface import GenSettings
    from backend.generation.recording import record_generation
    from backend.models.fake import FakeGenerator
    from store import open_store

    store = open_store(str(arena_env / "arena.duckdb"))
    settings = GenSettings(max_new_tokens=5)
    result = FakeGenerator("toy-mamba", "mamba").generate("Tell me about <b>the mill</b>", settings)
    run_id = record_generation(store, [result], settings, failures={"toy-transformer": "It could not load."})
    at = _page()
    gen = at.selectbox(key="history_gen_run")
    assert gen.value == run_id and "FAILED: toy-transformer" in gen.format_func(gen.value)
    assert "It could not load." in " ".join(e.value for e in at.error)
    codes = [c.value for c in at.code]
    assert "Tell me about <b>the mill</b>" in codes and result.text in codes  # as text, never HTML
    assert any(c.value.startswith("Settings: max_new_tokens 5") for c in at.caption)
    metrics = [t.value["value"].to_dict() for t in at.table]
    assert metrics and metrics[0]["new_tokens"] == str(result.metrics.new_tokens)
    runs_table = at.dataframe[-1].value
    assert list(runs_table["status"]) == ["failed"]
    assert list(runs_table["failed models"]) == ["toy-transformer: It could not load."]


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
    assert [t.label for t in at.tabs] == ["Measurements", "Experiments", "Generations"]
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
