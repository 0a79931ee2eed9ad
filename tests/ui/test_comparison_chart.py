"""Regression: the RAG page's comparison chart stacked a model's closed-book column onto its open-book bar
(both columns carry the same model name; px.bar stacks bars of one x and colour: toy-mamba's "peak memory"
read 1,835 MiB = 926 + 909). Checked on the committed results: one question of results/exp_rag_cpu.jsonl.gz
answered by toy-mamba with passages (k = 2) and closed-book (k = 0), as the RAG page's two columns."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from backend.generation.interface import GenerationResult, GenMetrics, GenSettings
from pages.components import charts

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "results" / "exp_rag_cpu.jsonl.gz"
FIELDS = set(GenMetrics.__dataclass_fields__)


def _committed(model: str, instance: str) -> GenerationResult:
    for line in gzip.decompress(COMMITTED.read_bytes()).decode().splitlines():
        rec = json.loads(line)
        d = rec.get("data") or {}
        if rec["type"] == "measurement" and d.get("model") == model and (d.get("extra") or {}).get("instance_id") == instance:
            m = GenMetrics(**{k: v for k, v in d.items() if k in FIELDS})
            return GenerationResult(model, d["family"], "prompt", "answer", [], "eos", m, GenSettings())
    raise AssertionError(f"{model} {instance} is not in {COMMITTED.name}")


def _bars(fig, panel: str) -> dict[str, list[float]]:
    """x -> every bar value drawn at that x in one panel (facet) of the chart."""
    axis = next(a for a in fig.layout.annotations if a.text == panel)
    out: dict[str, list[float]] = {}
    for tr in fig.data:
        # the facet's x axis is the annotation's (px puts facet titles over their own axis domain)
        xa = fig.layout[("xaxis" + tr.xaxis[1:]) if tr.xaxis != "x" else "xaxis"]
        if not (xa.domain[0] <= axis.x <= xa.domain[1]) or not _same_row(fig, tr, axis):
            continue
        for x, y in zip(tr.x, tr.y, strict=True):
            out.setdefault(x, []).append(y)
    return out


def _same_row(fig, tr, ann) -> bool:
    ya = fig.layout[("yaxis" + tr.yaxis[1:]) if tr.yaxis != "y" else "yaxis"]
    return ya.domain[0] <= ann.y <= ya.domain[1] + 0.1


def test_a_models_closed_book_column_is_its_own_bar_not_stacked_on_the_open_book_one():
    open_book = _committed("toy-mamba", "k=2/q=0")
    closed = _committed("toy-mamba", "k=0/q=0")
    assert open_book.metrics.ttft_ms != closed.metrics.ttft_ms  # two different measurements of one model
    labelled = [("toy-mamba", open_book), ("toy-mamba (closed-book)", closed)]
    weights = {"toy-mamba": 8_057_088 * 4, "toy-mamba (closed-book)": 8_057_088 * 4}
    fig = charts.comparison_chart(labelled, weights)
    assert fig.layout.barmode == "group"
    ttft = _bars(fig, "time to first token (ms)")
    assert ttft == {"toy-mamba": [open_book.metrics.ttft_ms], "toy-mamba (closed-book)": [closed.metrics.ttft_ms]}
    mem = _bars(fig, "weights + cache (MiB)")
    assert mem["toy-mamba"] == [(8_057_088 * 4 + open_book.metrics.cache_bytes) / 2**20]
    assert len(mem["toy-mamba (closed-book)"]) == 1  # one bar per column: nothing summed
    # the process RSS (the whole app: 926 + 909 MiB in the issue) is no bar of this chart
    assert not any("peak" in a.text for a in fig.layout.annotations)


def test_unlabelled_results_still_plot_one_bar_per_model():
    r = _committed("toy-transformer", "k=2/q=0")
    fig = charts.comparison_chart([r])
    assert _bars(fig, "decode tokens/s") == {"toy-transformer": [r.metrics.decode_tok_s]}
    assert all(ax.rangemode == "tozero" for ax in (fig.layout[k] for k in fig.layout if k.startswith("yaxis")))
