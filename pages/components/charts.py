"""Every plotly figure the pages draw (the only UI module that imports plotly).

Each function takes the data frames the backend computes (backend.experiments.views / rag_views,
backend.bench.analysis, the store's rows) and returns a figure; the pages only lay them out. No Streamlit
here, so the figures are tested without a script run (tests/ui/test_charts.py).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.experiments.views import EFFICIENCY
from backend.generation.interface import GenerationResult

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
SERIES_COLORS = px.colors.qualitative.D3  # distinct hues per series (the default theme uses shades of one colour)


# ------------------------------------------------------------------------ Arena / RAG answers
def metrics_frame(results: list[GenerationResult]) -> pd.DataFrame:
    """Long table (model, metric, value) of the finished columns, for a bar chart."""
    rows = []
    for r in results:
        m = r.metrics
        for name, val in (("time to first token (ms)", m.ttft_ms), ("prefill (ms)", m.prefill_ms),
                          ("time per output token (ms)", m.tpot_ms), ("decode tokens/s", m.decode_tok_s),
                          ("peak memory (MiB)", m.peak_mem_bytes / 2**20 if m.peak_mem_bytes else None),
                          ("cache (MiB)", m.cache_bytes / 2**20 if m.cache_bytes is not None else None)):
            if val is not None:
                rows.append({"model": r.model, "metric": name, "value": float(val)})
    return pd.DataFrame(rows, columns=["model", "metric", "value"])


def comparison_chart(results: list[GenerationResult]) -> go.Figure | None:
    """Bar chart, one panel per metric with its own axis; None when nothing finished."""
    df = metrics_frame(results)
    if df.empty:
        return None
    fig = px.bar(df, x="model", y="value", color="model", facet_col="metric", facet_col_wrap=3,
                 facet_row_spacing=0.18, height=520)
    fig.update_yaxes(matches=None, showticklabels=True, title=None)
    fig.update_xaxes(title=None, showticklabels=False)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    return fig


# ------------------------------------------------------------------------ experiments (accuracy with 95% CI)
def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _band(fig, x, lo, hi, color, name):
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                             fillcolor=_rgba(color, 0.13), line={"width": 0}, hoverinfo="skip",
                             showlegend=False, legendgroup=name))


def accuracy_lines(table: pd.DataFrame, x: str, title: str, dash_by: str | None = None,
                   x_title: str | None = None) -> go.Figure:
    """Accuracy against `x`, one line per model (and per `dash_by` value) with its 95% interval: a band
    for single lines, error bars when lines come in pairs (bands would pile up)."""
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    models = list(dict.fromkeys(table["model"]))
    groups = [(m, None) for m in models] if not dash_by else [
        (m, d) for m in models for d in dict.fromkeys(table[dash_by])]
    for gi, (m, d) in enumerate(groups):
        g = table[table["model"] == m] if d is None else table[(table["model"] == m) & (table[dash_by] == d)]
        if g.empty:
            continue
        g = g.sort_values(x)
        if d is not None:  # dodge paired lines sideways a little so their error bars do not overlap
            g = g.assign(**{x: g[x] + (gi - (len(groups) - 1) / 2) * 0.04})
        color = PALETTE[models.index(m) % len(PALETTE)]
        name = m if d is None else f"{m} · {d}"
        error_y = None
        if d is None:
            _band(fig, g[x], g["ci_low"], g["ci_high"], color, name)
        else:
            error_y = {"type": "data", "symmetric": False, "array": g["ci_high"] - g["accuracy"],
                       "arrayminus": g["accuracy"] - g["ci_low"], "thickness": 1, "width": 4}
        dash = "solid" if d is None else dashes[list(dict.fromkeys(table[dash_by])).index(d) % len(dashes)]
        fig.add_trace(go.Scatter(x=g[x], y=g["accuracy"], mode="lines+markers", name=name, legendgroup=name,
                                 line={"color": color, "dash": dash}, error_y=error_y,
                                 customdata=g[["n", "ci_low", "ci_high"]].to_numpy(),
                                 hovertemplate="%{y:.3f} (n=%{customdata[0]}, 95% CI %{customdata[1]:.3f}–"
                                               "%{customdata[2]:.3f})<extra>" + name + "</extra>"))
    ticks = sorted(set(table[x].dropna())) if not table.empty else []
    fig.update_layout(title=title, yaxis={"title": "accuracy", "range": [-0.02, 1.02]},
                      xaxis={"title": x_title or x, "tickvals": ticks}, height=420,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def length_lines(by_length: pd.DataFrame, train_contexts: list[int]) -> go.Figure:
    """Accuracy over all depths against context length (log axis), the training lengths as dashed lines."""
    fig = accuracy_lines(by_length, "length", "Where each model extrapolates and where it breaks "
                         "(accuracy over all depths)", x_title="context length (tokens)")
    fig.update_xaxes(type="log", tickvals=sorted(set(by_length["length"])))
    for ctx in train_contexts:
        fig.add_vline(x=ctx, line_dash="dash", line_color="grey")
    return fig


def heatmap_figure(grid: pd.DataFrame, title: str, train_context: int | None = None, diff: bool = False) -> go.Figure:
    """A length x depth heatmap; lengths beyond `train_context` are marked with a dashed line and "†"."""
    lengths = [int(c) for c in grid.columns]
    labels = [f"{n}†" if train_context and n > train_context else str(n) for n in lengths]
    z = grid.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=[f"{d:g}" for d in grid.index], zmin=-1 if diff else 0, zmax=1,
        colorscale="RdBu" if diff else "Viridis", zmid=0 if diff else None,
        text=[[("" if v != v else f"{v:+.2f}" if diff else f"{v:.2f}") for v in row] for row in z],
        texttemplate="%{text}", colorbar={"title": "Δ acc" if diff else "acc"},
        hovertemplate="length %{x}, depth %{y}: %{z:.3f}<extra></extra>"))
    beyond = [i for i, n in enumerate(lengths) if train_context and n > train_context]
    if beyond and beyond[0] > 0:
        fig.add_vline(x=beyond[0] - 0.5, line_dash="dash", line_color="black")
    if beyond:
        fig.add_annotation(text=f"† beyond training length ({train_context})", showarrow=False, xref="paper",
                           yref="paper", x=1, y=1.08, xanchor="right")
    fig.update_layout(title=title, xaxis_title="context length (tokens)", yaxis_title="passkey depth",
                      height=360, xaxis_type="category", yaxis_type="category")
    return fig


def efficiency_figure(table: pd.DataFrame) -> go.Figure | None:
    """Prefill time, decode time per token, peak memory and cache bytes against prompt length per model, from
    `views.efficiency_table` (medians per target length); None when the run has no timing rows."""
    models = table.attrs.get("models") or list(dict.fromkeys(table["model"]))
    if not models:
        return None
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in EFFICIENCY])
    for i, (col, _title) in enumerate(EFFICIENCY):
        r, c = i // 2 + 1, i % 2 + 1
        for m in models:
            g = table[(table["measure"] == col) & (table["model"] == m)]
            if g.empty:
                continue
            fig.add_trace(go.Scatter(x=g["prompt_tokens"], y=g["value"], mode="lines+markers", name=g["label"].iloc[0],
                                     legendgroup=m, showlegend=i == 0,
                                     line={"color": PALETTE[models.index(m) % len(PALETTE)]}), row=r, col=c)
        fig.update_xaxes(title_text="prompt tokens", row=r, col=c)
    fig.update_layout(height=620, legend={"orientation": "h", "y": -0.12})
    return fig


# ------------------------------------------------------------------------ RAG evaluation
def metric_lines(table: pd.DataFrame, metric: str, title: str, y_title: str | None = None) -> go.Figure:
    """One metric against k, one line per model with its 95% band."""
    fig = accuracy_lines(table[table["metric"] == metric], "k", title, x_title="k (retrieved passages; 0 = closed-book)")
    fig.update_layout(yaxis_title=y_title or metric)
    return fig


def retrieval_lines(stored: pd.DataFrame) -> go.Figure:
    """recall@k and MRR@k of the retriever against k (one line per metric, 95% bands)."""
    t = stored[stored["metric"].isin(["recall@k", "MRR@k"])]
    t = t.assign(model=t["metric"])
    fig = accuracy_lines(t, "k", "Retrieval: gold document among the top k (recall@k) and MRR@k", x_title="k")
    fig.update_layout(yaxis_title="recall / MRR")
    return fig


def book_bars(table: pd.DataFrame, metric: str = "exact match") -> go.Figure:
    """Grouped bars: per model, closed-book then open-book at each k, with 95% error bars."""
    fig = go.Figure()
    conditions = list(dict.fromkeys(table.sort_values("k")["condition"]))
    for i, cond in enumerate(conditions):
        g = table[table["condition"] == cond]
        fig.add_trace(go.Bar(
            x=g["model"], y=g[metric], name=cond,
            marker_color="#7f7f7f" if cond == "closed-book" else PALETTE[i % len(PALETTE)],
            error_y={"type": "data", "symmetric": False, "array": g["ci_high"] - g[metric],
                     "arrayminus": g[metric] - g["ci_low"], "thickness": 1},
            customdata=g[["n"]].to_numpy(), hovertemplate="%{y:.3f} (n=%{customdata[0]})<extra>" + cond + "</extra>"))
    fig.update_layout(barmode="group", title=f"Closed-book vs open-book ({metric}, 95% intervals)",
                      yaxis={"title": metric, "range": [0, 1.02]}, height=380, legend={"orientation": "h", "y": -0.2})
    return fig


def retrieval_measurement(df: pd.DataFrame) -> go.Figure:
    """The RAG evaluation page's retriever-only measurement: recall@k and MRR against k, recall's lower 95% bound dotted."""
    fig = px.line(df, x="k", y="value", color="metric", markers=True, range_y=[0, 1.02], height=320)
    recall = df[df["metric"] == "recall@k"]
    fig.add_scatter(x=recall["k"], y=recall["ci_low"], mode="lines", line={"dash": "dot", "width": 1},
                    name="recall 95% CI (low)")
    return fig


# ------------------------------------------------------------------------ History
def measurement_scatter(d: pd.DataFrame, metric: str, title: str, hover: list[str]) -> go.Figure:
    """One stored metric against prompt length, one colour per model · device."""
    return px.scatter(d.sort_values("prompt_tokens"), x="prompt_tokens", y=metric, color="series",
                      hover_data=hover, title=title, labels={"prompt_tokens": "prompt tokens",
                                                              metric: title, "series": "model · device"})


def accuracy_over_time(acc: pd.DataFrame, title: str) -> go.Figure:
    """Accuracy against the time it was measured, one line per model (dashed per sweep point), 95% CI bars."""
    d = acc.sort_values("created_at").assign(point=acc["point"].replace("", "(single point)"),
                                             plus=acc["ci_high"] - acc["value"], minus=acc["value"] - acc["ci_low"])
    fig = px.line(d, x="created_at", y="value", color="model", markers=True, error_y="plus", error_y_minus="minus",
                  line_dash="point" if d["point"].nunique() > 1 else None, title=title,
                  hover_data={"run_id": True, "n": True, "ci_low": ":.3f", "ci_high": ":.3f", "plus": False,
                              "minus": False},
                  labels={"created_at": "measured (UTC)", "value": "accuracy", "point": "sweep point"})
    fig.update_layout(yaxis={"range": [-0.02, 1.02]}, legend={"orientation": "h", "y": -0.25}, height=460)
    return fig


# ------------------------------------------------------------------------ Performance (benchmark)
def series_colors(series) -> dict[str, str]:
    """A fixed colour per series name (sorted), shared by every Performance plot."""
    return {name: SERIES_COLORS[i % len(SERIES_COLORS)] for i, name in enumerate(sorted(series))}


def context_lines(d: pd.DataFrame, y: str, title: str, colors: dict[str, str], log_y: bool = True,
                  crossovers: list[tuple[float, str]] = ()) -> go.Figure:
    """`y` against context length per series (log-log), with a dotted line at each (x, label) crossover."""
    fig = px.line(d, x="prompt_tokens", y=y, color="series", markers=True, log_x=True, log_y=log_y,
                  color_discrete_map=colors,
                  labels={"prompt_tokens": "context (prompt tokens)", y: title}, title=title)
    for x, label in crossovers:
        fig.add_vline(x=x, line_dash="dot", annotation_text=label)
    return fig


def batch_throughput(b: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Generated tokens/s for the whole batch against batch size (end to end and decode only)."""
    return px.line(b, x="batch", y="tokens/s", color="series", line_dash="measure", markers=True, log_x=True,
                   color_discrete_map=colors,
                   log_y=True, title="Generated tokens/s for the whole batch")


# ------------------------------------------------------------------------ Kernels
def prefill_lines(pre: pd.DataFrame) -> go.Figure:
    return px.line(pre.sort_values("prompt_tokens"), x="prompt_tokens", y="prefill_ms", color="series",
                   markers=True, log_x=True, log_y=True,
                   labels={"prompt_tokens": "prompt tokens", "prefill_ms": "prefill (ms)"},
                   title="Prefill time vs prompt length (log-log)")


def prefill_memory_lines(mem: pd.DataFrame) -> go.Figure:
    return px.line(mem.sort_values("prompt_tokens"), x="prompt_tokens", y="peak_mem_gib", color="series",
                   markers=True, log_x=True, labels={"prompt_tokens": "prompt tokens",
                                                     "peak_mem_gib": "peak GPU memory (GiB)"},
                   title="Peak memory during prefill (weights included)")


def decode_bars(dec: pd.DataFrame) -> go.Figure:
    fig = px.bar(dec.sort_values("prompt_tokens"), x="prompt_tokens", y="decode_tok_s", color="series",
                 barmode="group", labels={"prompt_tokens": "context tokens", "decode_tok_s": "tokens/s"},
                 title="Decode tokens/s vs context length (greedy, batch 1)")
    fig.update_xaxes(type="category")
    return fig


def roofline_bars(k: pd.DataFrame, ceiling: float | None) -> go.Figure:
    """Achieved GB/s per kernel (percent of the copy bandwidth on top), the measured ceiling dashed."""
    fig = go.Figure(go.Bar(x=k["label"], y=k["gbps"], name="achieved GB/s",
                           text=[f"{p:.0f}%" for p in k["pct_of_copy"]], textposition="outside"))
    if ceiling:
        fig.add_hline(y=ceiling, line_dash="dash", annotation_text="copy bandwidth (measured)")
    fig.update_layout(yaxis_title="GB/s", title="Achieved bandwidth vs measured ceiling")
    return fig


def speedup_bars(long: pd.DataFrame) -> go.Figure:
    fig = px.bar(long, x="label", y="speedup", color="baseline", barmode="group", log_y=True,
                 title="Speed-up of our kernel over each baseline (>1: ours is faster)",
                 labels={"label": "", "speedup": "speed-up (x, log)"})
    fig.add_hline(y=1.0, line_dash="dot")
    return fig


# ------------------------------------------------------------------------ Models
def loss_lines(df: pd.DataFrame, x_label: str) -> go.Figure:
    """Training loss per bundled model (dashed per series), log scale."""
    return px.line(df, x="x", y="loss", color="model", line_dash="series", labels={"x": x_label}, log_y=True)
