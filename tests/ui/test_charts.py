"""The figures the pages draw (pages/components/charts.py) from the backend's tables, without a script run."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from backend.experiments import rag_views as rv
from backend.experiments.views import accuracy_table, efficiency_table, heatmap_grid
from backend.generation.interface import GenSettings
from backend.models.fake import FakeGenerator
from pages.components import charts

ROOT = Path(__file__).resolve().parents[2]


def pred(iid, model, score, k=0, extracted="x", reference="x"):
    return {"instance_id": iid, "model": model, "score": score, "extracted": extracted, "output": extracted,
            "reference": reference, "prompt": "p", "params": {"k": k, "query": iid},
            "extra": {"scores": {"strict": score, "flexible": score}}}


def test_accuracy_lines_one_legend_entry_per_model_with_a_band():
    df = pd.DataFrame([pred("a", "m", 1.0), pred("b", "m", 1.0), pred("c", "m", 0.0), pred("a", "n", 0.0, k=2)])
    fig = charts.accuracy_lines(accuracy_table(df, ["k"], "flexible"), "k", "t")
    assert {tr.name for tr in fig.data if tr.showlegend is not False} == {"m", "n"}
    bands = [tr for tr in fig.data if tr.fill == "toself"]
    assert len(bands) == 2 and bands[0].fillcolor == "rgba(31,119,180,0.13)"  # PALETTE[0], translucent


def test_paired_lines_get_error_bars_instead_of_bands():
    table = pd.DataFrame({"model": ["m"] * 4, "steps": [1, 2, 1, 2], "mode": ["direct", "direct", "cot", "cot"],
                          "accuracy": [0.5, 0.4, 0.9, 0.8], "n": 10, "ci_low": 0.2, "ci_high": 0.95})
    fig = charts.accuracy_lines(table, "steps", "t", dash_by="mode")
    assert [tr.name for tr in fig.data] == ["m · direct", "m · cot"]
    assert [tr.line.dash for tr in fig.data] == ["solid", "dash"] and all(tr.error_y.array is not None
                                                                          for tr in fig.data)


def test_heatmap_marks_lengths_beyond_training():
    table = pd.DataFrame({"model": ["m"] * 4, "length": [512, 2048, 512, 2048], "depth": [0.0, 0.0, 1.0, 1.0],
                          "accuracy": [1.0, 0.5, 1.0, 0.0], "n": 2, "ci_low": 0.0, "ci_high": 1.0})
    grid = heatmap_grid(table, "m")
    fig = charts.heatmap_figure(grid, "m", train_context=1024)
    assert list(fig.data[0].x) == ["512", "2048†"]
    assert any("beyond training length (1024)" in a.text for a in fig.layout.annotations)
    assert fig.layout.shapes  # the dashed boundary line
    plain = charts.heatmap_figure(grid, "m", train_context=None)
    assert list(plain.data[0].x) == ["512", "2048"] and not plain.layout.annotations
    diff = charts.heatmap_figure(grid - grid, "a minus b", 1024, diff=True)
    assert diff.data[0].zmin == -1 and diff.data[0].text[0][0] == "+0.00"


def test_length_lines_mark_each_training_length():
    by_length = pd.DataFrame({"model": ["m", "m"], "length": [512, 2048], "accuracy": [1.0, 0.2], "n": 5,
                              "ci_low": 0.5, "ci_high": 1.0})
    fig = charts.length_lines(by_length, [1024])
    assert fig.layout.xaxis.type == "log" and [s.x0 for s in fig.layout.shapes] == [1024]


def test_efficiency_figure_groups_by_target_length():
    rows = [{"model": "s", "metric": None, "prompt_tokens": 500 + i, "prefill_ms": 1.0 + i, "tpot_ms": 1.0,
             "peak_mem_bytes": 2**20, "cache_bytes": 2**20, "peak_mem_kind": "cpu_rss", "cache_kind": "ssm_state",
             "device": "cpu", "extra": {"params": {"length": 512}}} for i in range(3)]
    rows.append({**rows[0], "metric": "accuracy[strict]", "prompt_tokens": None})
    fig = charts.efficiency_figure(efficiency_table(pd.DataFrame(rows)))
    prefill = fig.data[0]
    assert list(prefill.x) == [501.0] and list(prefill.y) == [2.0]  # medians over the 512-token instances
    assert prefill.name == "s (ssm_state, cpu_rss, cpu)" and len(fig.data) == 4
    assert [tr.showlegend for tr in fig.data] == [True, False, False, False]  # one legend entry per model
    assert charts.efficiency_figure(efficiency_table(pd.DataFrame(rows[-1:]))) is None


def test_rag_figures_from_the_backend_tables():
    preds = pd.DataFrame([pred("a", "m", 1.0, k=0), pred("b", "m", 0.0, k=0, extracted="y"),
                          pred("a", "m", 1.0, k=2), pred("b", "m", 1.0, k=2)])
    answers = rv.answer_table(preds)
    em = charts.metric_lines(answers, "exact match", "EM")
    assert em.layout.yaxis.title.text == "exact match" and [tr.name for tr in em.data if tr.showlegend is not False] == ["m"]
    bars = charts.book_bars(rv.book_table(answers))
    assert [tr.name for tr in bars.data] == ["closed-book", "open-book k=2"]
    assert bars.data[0].marker.color == "#7f7f7f" and list(bars.data[1].y) == [1.0]
    stored = pd.DataFrame({"model": "retriever", "k": [1, 2, 1, 2], "metric": ["recall@k"] * 2 + ["MRR@k"] * 2,
                           "accuracy": [0.5, 0.8, 0.5, 0.6], "n": 10, "ci_low": 0.2, "ci_high": 0.9})
    rec = charts.retrieval_lines(stored)
    assert {tr.name for tr in rec.data if tr.showlegend is not False} == {"recall@k", "MRR@k"}


def test_comparison_chart_one_panel_per_metric():
    gen = FakeGenerator("toy-mamba", "mamba")
    result = gen.generate("hello there", GenSettings(max_new_tokens=4, stop_at_eos=False))
    assert charts.comparison_chart([]) is None
    fig = charts.comparison_chart([result])
    panels = {a.text for a in fig.layout.annotations}
    assert {"time to first token (ms)", "decode tokens/s"} <= panels and not any("=" in p for p in panels)


def test_only_the_charts_module_imports_plotly():
    """Pages lay figures out; every figure is built in pages/components/charts.py."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]
    importers = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "plotly" or n.startswith("plotly.") for n in names):
                importers.append(f.relative_to(ROOT).as_posix())
    # training.py: the Training page's figures (charts.py is at the file-length cap)
    assert set(importers) == {"pages/components/charts.py", "pages/components/training.py"}, importers
