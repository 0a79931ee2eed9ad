"""Plot data for the experiment pages: accuracy tables from predictions, run comparison, safe text.

The figures drawn from these tables are tested in tests/ui/test_charts.py."""

from __future__ import annotations

import pandas as pd
import pytest

from backend.experiments.metrics import wilson_interval
from backend.experiments.views import (
    accuracy_table,
    compare_runs,
    compare_summary,
    efficiency_table,
    heatmap_grid,
    markdown_escape,
)


def pred(iid, model, score, k=0, strict=None, extracted="x", prompt="p", error=None):
    scores = {} if score is None else {"strict": score if strict is None else strict, "flexible": score}
    extra = {"scores": scores, **({"error": error} if error else {})}
    return {"instance_id": iid, "model": model, "score": score, "extracted": extracted, "output": extracted,
            "prompt": prompt, "params": {"k": k, "query": iid}, "extra": extra}


def test_accuracy_table_uses_the_chosen_filter_and_skips_unscored():
    df = pd.DataFrame([pred("a", "m", 1.0, strict=0.0), pred("b", "m", 1.0), pred("c", "m", 0.0),
                       pred("d", "m", None, error="too long"), pred("a", "n", 0.0, k=2)])
    t = accuracy_table(df, ["k"], "flexible").set_index("model")
    assert t.loc["m", "n"] == 3 and t.loc["m", "accuracy"] == pytest.approx(2 / 3)
    assert (t.loc["m", "ci_low"], t.loc["m", "ci_high"]) == pytest.approx(wilson_interval(2, 3))
    strict = accuracy_table(df, ["k"], "strict").set_index("model")
    assert strict.loc["m", "accuracy"] == pytest.approx(1 / 3)


def test_compare_runs_finds_changed_instances():
    a = pd.DataFrame([pred("1", "m", 1.0, extracted="4"), pred("2", "m", 0.0, extracted="3"),
                      pred("3", "m", 1.0, extracted="7"), pred("4", "m", 0.0, extracted="1")])
    b = pd.DataFrame([pred("1", "m", 0.0, extracted="5"), pred("2", "m", 1.0, extracted="2"),
                      pred("3", "m", 1.0, extracted="7"), pred("4", "m", 0.0, extracted="9", prompt="other")])
    ch = compare_runs(a, b).set_index("instance_id")
    assert ch.loc["1", "change"] == "broke" and ch.loc["2", "change"] == "fixed"
    assert ch.loc["4", "change"] == "answer changed" and not ch.loc["4", "same_prompt"]
    assert "3" not in ch.index
    s = compare_summary(a, b).iloc[0]
    assert (s["instances in both"], s["changed"], s["fixed"], s["broke"]) == (4, 3, 1, 1)


def test_heatmap_grid_is_depth_by_length():
    table = pd.DataFrame({"model": ["m"] * 4, "length": [512, 2048, 512, 2048], "depth": [0.0, 0.0, 1.0, 1.0],
                          "accuracy": [1.0, 0.5, 1.0, 0.0], "n": 2, "ci_low": 0.0, "ci_high": 1.0})
    grid = heatmap_grid(table, "m")
    assert list(grid.index) == [0.0, 1.0] and list(grid.columns) == [512, 2048]
    assert grid.loc[1.0, 2048] == 0.0 and grid.loc[0.0, 2048] == 0.5


def efficiency_rows():
    """Three instances of target length 512 for model s, one of 1024 for t (no memory kinds), one aggregate."""
    rows = [{"model": "s", "metric": None, "prompt_tokens": 500 + i, "prefill_ms": 1.0 + i, "tpot_ms": 1.0,
             "peak_mem_bytes": 2**20, "cache_bytes": 2**21, "peak_mem_kind": "cpu_rss", "cache_kind": "ssm_state",
             "device": "cpu", "extra": {"params": {"length": 512}}} for i in range(3)]
    rows.append({**rows[0], "model": "t", "prompt_tokens": 1000, "tpot_ms": None, "peak_mem_kind": "",
                 "cache_kind": "", "extra": {"params": {"length": 1024}}})
    rows.append({**rows[0], "metric": "accuracy[strict]", "prompt_tokens": None})
    return pd.DataFrame(rows)


def test_efficiency_table_takes_medians_per_target_length():
    t = efficiency_table(efficiency_rows())
    assert t.attrs["models"] == ["s", "t"]
    s = t[t["model"] == "s"].set_index("measure")
    assert s.loc["prefill_ms", "prompt_tokens"] == 501.0 and s.loc["prefill_ms", "value"] == 2.0
    assert s.loc["peak_mem_bytes", "value"] == 1.0 and s.loc["cache_bytes", "value"] == 2.0  # MiB
    assert set(s["label"]) == {"s (ssm_state, cpu_rss, cpu)"} and set(s["point"]) == {512.0}
    tt = t[t["model"] == "t"]
    assert "tpot_ms" not in set(tt["measure"]) and set(tt["label"]) == {"t"}  # no value, no row
    assert list(dict.fromkeys(t["measure"])) == ["prefill_ms", "tpot_ms", "peak_mem_bytes", "cache_bytes"]


def test_efficiency_table_without_timing_rows_is_empty():
    only_aggregates = efficiency_rows().assign(metric="accuracy[strict]")
    t = efficiency_table(only_aggregates)
    assert t.empty and t.attrs["models"] == []


def test_markdown_escape_keeps_model_text_literal():
    text = "<script>x</script> **bold** $x$ :smile: [link](http://a) # h\nnext"
    out = markdown_escape(text)
    assert "<" not in out.replace("\\<", "") and "**" not in out and "](" not in out
    assert out.endswith("h  \nnext")


def test_accuracy_history_lists_primary_aggregates(tmp_path):
    from backend.experiments.config import ExperimentConfig
    from backend.experiments.runner import run_experiment
    from backend.experiments.views import accuracy_history
    from backend.models.fake import FakeGenerator
    from store import open_store

    st = open_store(tmp_path / "h.duckdb")
    cfg = ExperimentConfig("cot", ["m"], n=1, sweep={"steps": [1], "mode": ["direct", "cot"]}, task="arithmetic")
    run_experiment(cfg, {"m": FakeGenerator("m", "mamba")}, st, meta={})
    h = accuracy_history(st.measurements())
    assert sorted(h["point"]) == ["mode=cot, steps=1", "mode=direct, steps=1"]
    assert (h["kind"] == "experiment-cot").all() and (h["n"] == 1).all()
