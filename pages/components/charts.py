"""Plotly figures of the pages (plotly is imported only here and in pages/components/training.py, the Training page's).

Each function takes the data frames the backend computes (backend.experiments.views / rag_views,
backend.bench.analysis, the store's rows) and returns a figure; the pages only lay them out. No Streamlit
here, so the figures are tested without a script run (tests/ui/test_charts.py).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.experiments.views import EFFICIENCY

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
SERIES_COLORS = px.colors.qualitative.D3  # distinct hues per series (the default theme uses shades of one colour)


# ------------------------------------------------------------------------ Arena / RAG answers
def metrics_frame(results, weights: dict[str, int | None] | None = None) -> pd.DataFrame:
    """Long table (column, metric, value) of the finished columns, for a bar chart. `results`: results or
    (column label, result) pairs; one bar per column, so two columns of one model (RAG open- and closed-book)
    stay two bars. Memory is this model's weights + cache (`weights`: label -> bytes), never the process's
    RSS (that counts every loaded model and the app)."""
    pairs = [item if isinstance(item, tuple) else (item.model, item) for item in results]
    weights = weights or {}
    rows = []
    for label, r in pairs:
        m = r.metrics
        w = weights.get(label)
        for name, val in (("time to first token (ms)", m.ttft_ms), ("prefill (ms)", m.prefill_ms),
                          ("time per output token (ms)", m.tpot_ms), ("decode tokens/s", m.decode_tok_s),
                          ("weights + cache (MiB)", (w + (m.cache_bytes or 0)) / 2**20 if w else None),
                          ("cache (MiB)", m.cache_bytes / 2**20 if m.cache_bytes is not None else None)):
            if val is not None:
                rows.append({"model": label, "metric": name, "value": float(val)})
    return pd.DataFrame(rows, columns=["model", "metric", "value"])


def comparison_chart(results, weights: dict[str, int | None] | None = None) -> go.Figure | None:
    """Bar chart, one panel per metric with its own axis from zero, one bar per column (grouped, never
    stacked); None when nothing finished."""
    df = metrics_frame(results, weights)
    if df.empty:
        return None
    fig = px.bar(df, x="model", y="value", color="model", facet_col="metric", facet_col_wrap=3,
                 facet_row_spacing=0.18, height=520, barmode="group")
    fig.update_yaxes(matches=None, showticklabels=True, title=None, rangemode="tozero")
    fig.update_xaxes(title=None, showticklabels=False)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    return fig


# ------------------------------------------------------------------------ experiments (accuracy with 95% CI)
def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _band(fig, x, lo, hi, color, name, col: int | None = None):
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                             fillcolor=_rgba(color, 0.13), line={"width": 0}, hoverinfo="skip",
                             showlegend=False, legendgroup=name), **({"row": 1, "col": col} if col else {}))


def accuracy_lines(table: pd.DataFrame, x: str, title: str, dash_by: str | None = None,
                   x_title: str | None = None, baselines: pd.DataFrame | None = None,
                   trained_max: float | None = None, log_x: bool = False) -> go.Figure:
    """Accuracy against `x`, one line per model (and per `dash_by` value) with its 95% interval: a band
    for single lines, error bars when lines come in pairs (bands would pile up).

    baselines: rows (x, baseline, value) from `stats.baseline_table`, drawn grey (chance dotted, majority dashed):
      the floor a model must beat. trained_max: the largest x training showed; points on both sides of it go to
      two panels, "within training" and "beyond training". log_x: x placed at log2(x + 1), labelled with x (k = 0
      stays on the axis). A `holds` column (difference tables) draws filled markers where the difference holds and
      open ones where it does not."""
    xs = sorted(set(table[x].dropna())) if not table.empty else []
    split = trained_max is not None and any(v <= trained_max for v in xs) and any(v > trained_max for v in xs)
    keeps = [lambda v: v <= trained_max, lambda v: v > trained_max] if split else [lambda v: True]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        column_widths=[sum(map(keeps[0], xs)) or 1, sum(map(keeps[1], xs)) or 1],
                        subplot_titles=[f"within training ({x_title or x} ≤ {trained_max:g})",
                                        f"beyond training ({x_title or x} > {trained_max:g})"]) if split else go.Figure()
    pos = (lambda v: math.log2(v + 1)) if log_x else (lambda v: v)

    def add(trace, col: int) -> None:
        fig.add_trace(trace, **({"row": 1, "col": col} if split else {}))

    dashes = ["solid", "dash", "dot", "dashdot"]
    models = list(dict.fromkeys(table["model"]))
    groups = [(m, None) for m in models] if not dash_by else [
        (m, d) for m in models for d in dict.fromkeys(table[dash_by])]
    for gi, (m, d) in enumerate(groups):
        g = table[table["model"] == m] if d is None else table[(table["model"] == m) & (table[dash_by] == d)]
        if g.empty:
            continue
        color = PALETTE[models.index(m) % len(PALETTE)]
        name = m if d is None else f"{m} · {d}"
        for col, keep in enumerate(keeps, start=1):
            gp = g[g[x].map(keep)].sort_values(x)
            if gp.empty:
                continue
            xp = gp[x].map(pos)
            if d is not None:  # dodge paired lines sideways a little so their error bars do not overlap
                xp = xp + (gi - (len(groups) - 1) / 2) * 0.04
            error_y = None
            if d is None:
                _band(fig, xp, gp["ci_low"], gp["ci_high"], color, name, col if split else None)
            else:
                error_y = {"type": "data", "symmetric": False, "array": gp["ci_high"] - gp["accuracy"],
                           "arrayminus": gp["accuracy"] - gp["ci_low"], "thickness": 1, "width": 4}
            marker = {"symbol": ["circle" if h else "circle-open" for h in gp["holds"]], "size": 8} \
                if "holds" in gp.columns else None
            dash = "solid" if d is None else dashes[list(dict.fromkeys(table[dash_by])).index(d) % len(dashes)]
            add(go.Scatter(x=xp, y=gp["accuracy"], mode="lines+markers", name=name, legendgroup=name,
                           showlegend=col == 1 or not any(keeps[0](v) for v in g[x]),
                           line={"color": color, "dash": dash}, error_y=error_y, marker=marker,
                           customdata=gp[["n", "ci_low", "ci_high"]].to_numpy(),
                           hovertemplate="%{y:.3f} (n=%{customdata[0]}, 95% CI %{customdata[1]:.3f}–"
                                         "%{customdata[2]:.3f})<extra>" + name + "</extra>"), col)
    if baselines is not None and not baselines.empty:
        styles = {"chance": "dot", "majority": "dash"}
        for b, gb in baselines.groupby("baseline", sort=False):
            gb = gb.groupby(x, as_index=False)["value"].max().sort_values(x)
            for col, keep in enumerate(keeps, start=1):
                gp = gb[gb[x].map(keep)]
                if not gp.empty:
                    add(go.Scatter(x=gp[x].map(pos), y=gp["value"], mode="lines", name=f"{b} (floor)",
                                   legendgroup=f"baseline {b}", showlegend=col == 1 or not any(map(keeps[0], gb[x])),
                                   line={"color": "grey", "dash": styles.get(b, "dashdot"), "width": 1.5},
                                   hovertemplate=f"{b}: " + "%{y:.3f}<extra></extra>"), col)
    label = lambda v: f"{v:g}" if isinstance(v, (int, float)) else str(v)  # noqa: E731
    for col, keep in enumerate(keeps, start=1):
        ticks = [v for v in xs if keep(v)]
        fig.update_xaxes(tickvals=[pos(v) for v in ticks], ticktext=[label(v) for v in ticks],
                         title_text=(x_title or x) + (" (log scale)" if log_x else ""),
                         **({"row": 1, "col": col} if split else {}))
    if trained_max is not None and not split and xs:
        title += f" — all points {'within' if xs[-1] <= trained_max else 'beyond'} training (≤ {trained_max:g})"
    fig.update_layout(title=title, height=420, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(range=[-0.02, 1.02])
    fig.layout.yaxis.title.text = "accuracy"
    return fig


def diff_lines(paired: pd.DataFrame, x: str, title: str, dash_by: str | None = None, x_title: str | None = None,
               trained_max: float | None = None, log_x: bool = False) -> go.Figure:
    """Each model minus the reference model on the same items (`stats.paired_table`), with the 95% interval of
    the paired difference; filled markers where the difference holds (interval excludes 0, Holm-corrected
    McNemar p < 0.05), open ones where it does not; a line at 0."""
    t = paired.assign(model=[f"{m} − {r}" for m, r in zip(paired["model"], paired["reference"], strict=True)],
                      accuracy=paired["diff"], ci_low=paired["diff_low"], ci_high=paired["diff_high"])
    fig = accuracy_lines(t, x, title, dash_by=dash_by, x_title=x_title, trained_max=trained_max, log_x=log_x)
    fig.update_yaxes(range=[-1.02, 1.02])
    fig.layout.yaxis.title.text = "difference (model minus reference)"
    fig.add_hline(y=0, line_color="black", line_width=1)
    return fig


def length_lines(by_length: pd.DataFrame, train_contexts: list[int]) -> go.Figure:
    """Accuracy over all depths against context length (log axis), the training lengths as dashed lines."""
    fig = accuracy_lines(by_length, "length", "Where each model extrapolates and where it breaks "
                         "(accuracy over all depths)", x_title="context length (tokens)")
    fig.update_xaxes(type="log", tickvals=sorted(set(by_length["length"])))
    for ctx in train_contexts:
        fig.add_vline(x=ctx, line_dash="dash", line_color="grey")
    return fig


def heatmap_figure(grid: pd.DataFrame, title: str, train_context: int | None = None, diff: bool = False,
                   counts: pd.DataFrame | None = None) -> go.Figure:
    """A length x depth heatmap; lengths beyond `train_context` are marked with a dashed line and "†"; `counts`
    (the same grid of n) writes each cell's n under its value."""
    lengths = [int(c) for c in grid.columns]
    labels = [f"{n}†" if train_context and n > train_context else str(n) for n in lengths]
    z = grid.to_numpy()
    ns = counts.reindex(index=grid.index, columns=grid.columns).to_numpy() if counts is not None else None

    def cell(v, i, j) -> str:
        if v != v:
            return ""
        text = f"{v:+.2f}" if diff else f"{v:.2f}"
        return text if ns is None or ns[i][j] != ns[i][j] else f"{text}<br>n={int(ns[i][j])}"

    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=[f"{d:g}" for d in grid.index], zmin=-1 if diff else 0, zmax=1,
        colorscale="RdBu" if diff else "Viridis", zmid=0 if diff else None,
        text=[[cell(v, i, j) for j, v in enumerate(row)] for i, row in enumerate(z)],
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
    """One stored metric against prompt length (log axis), one colour per series (backend.history.plot_rows),
    one panel per device (a CPU and a GPU never share an axis), y from zero, the legend under the plot."""
    devices = sorted(d["device"].astype(str).unique())
    many = len(devices) > 1
    fig = px.scatter(d.sort_values("prompt_tokens"), x="prompt_tokens", y=metric, color="series", log_x=True,
                     hover_data=hover, title=title if many else f"{title} · {devices[0]}",
                     labels={"prompt_tokens": "prompt tokens", metric: title, "series": "model"},
                     **({"facet_col": "device", "facet_col_wrap": 2, "category_orders": {"device": devices}} if many else {}))
    fig.update_yaxes(rangemode="tozero", matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0, "title": None},
                      height=340 * ((len(devices) + 1) // 2) + 120, margin={"b": 110})
    return fig


def accuracy_over_time(acc: pd.DataFrame, title: str) -> go.Figure:
    """Accuracy against the time it was measured, one line per model (dashed per sweep point), 95% CI bars."""
    d = acc.sort_values("created_at").assign(point=acc["point"].replace("", "(single point)"),
                                             plus=acc["ci_high"] - acc["value"], minus=acc["value"] - acc["ci_low"])
    fig = px.line(d, x="created_at", y="value", color="model", markers=True, error_y="plus", error_y_minus="minus",
                  line_dash="point" if d["point"].nunique() > 1 else None, title=title,
                  hover_data={"run_id": True, "n": True, "ci_low": ":.3f", "ci_high": ":.3f", "plus": False,
                              "minus": False},
                  labels={"created_at": "measured (UTC)", "value": "accuracy", "point": "sweep point"})
    # the legend under the x-axis title (at y=-0.25 it covered the axis and the lowest points)
    fig.update_layout(yaxis={"range": [-0.02, 1.02]}, height=500, margin={"b": 150},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0})
    return fig


# ------------------------------------------------------------------------ Performance (benchmark)
def series_colors(series) -> dict[str, str]:
    """A fixed colour per series name (sorted), shared by every Performance plot."""
    return {name: SERIES_COLORS[i % len(SERIES_COLORS)] for i, name in enumerate(sorted(series))}


def context_lines(d: pd.DataFrame, y: str, title: str, colors: dict[str, str], log_y: bool = True,
                  crossovers: list[tuple[float, str]] = ()) -> go.Figure:
    """`y` against context length per series (log-log), with a dotted, labelled line at each (x, label)
    crossover. Byte columns (`*_bytes`) are drawn in GiB (plotly's SI ticks would read "0.5B")."""
    if y.endswith("_bytes"):
        d = d.assign(**{y: d[y] / 2**30})
        title = title.replace("(bytes)", "").rstrip() + " (GiB)" if "GiB" not in title else title
    fig = px.line(d, x="prompt_tokens", y=y, color="series", markers=True, log_x=True, log_y=log_y,
                  color_discrete_map=colors,
                  labels={"prompt_tokens": "context (prompt tokens)", y: title}, title=title)
    if not log_y:
        fig.update_yaxes(rangemode="tozero")
    for x, label in crossovers:
        # add_vline's own annotation_text takes x in log10 units on a log axis and lands off the plot:
        # the line is placed in data units, its label at log10(x)
        fig.add_vline(x=x, line_dash="dot")
        fig.add_annotation(x=math.log10(x), xref="x", y=1, yref="paper", text=label, showarrow=False,
                           yanchor="bottom")
    return fig


def batch_throughput(b: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Generated tokens/s for the whole batch against batch size (end to end and decode only)."""
    return px.line(b, x="batch", y="tokens/s", color="series", line_dash="measure", markers=True, log_x=True,
                   color_discrete_map=colors,
                   log_y=True, title="Generated tokens/s for the whole batch")


def prefill_breakdown_bars(prof: pd.DataFrame) -> go.Figure:
    """Per model (label), one prefill's GPU kernel time per prompt token (us_per_token) stacked by category."""
    fig = px.bar(prof, y="label", x="us_per_token", color="category", orientation="h", text_auto=".2f",
                 category_orders={"category": ["scan", "conv", "matmul", "attention", "norm", "other"]},
                 labels={"us_per_token": "kernel time per prompt token (us)", "label": ""},
                 title="Where one prefill's GPU time goes (kernel time per prompt token)")
    return fig.update_layout(barmode="stack", legend_title_text="")


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


def roofline_bars(k: pd.DataFrame, ceiling: float | None, peers: pd.DataFrame | None = None) -> go.Figure:
    """One device's achieved GB/s per kernel (% of its own measured copy bandwidth on top, dashed); peers apart."""
    assert k["device"].nunique() <= 1, "one device per roofline: split the rows with backend.bench.analysis.rooflines"
    fig = go.Figure([go.Bar(x=d["label"], y=d["gbps"], name=n, text=[f"{p:.0f}%" for p in d["pct_of_copy"]], textposition="outside")
                     for n, d in (("ours", k), ("mamba-ssm-cuda (peer)", peers)) if d is not None and len(d)],
                    layout=dict(yaxis_title="GB/s", title=f"Achieved vs copy bandwidth: {', '.join(map(str, k['device'].unique()))}"))
    fig.add_hline(y=ceiling or 0, line_dash="dash", annotation_text="copy bandwidth (measured)", visible=bool(ceiling))
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


# ------------------------------------------------------------------------ Blind A/B
def rating_chart(scores: pd.DataFrame, title: str) -> go.Figure:
    """Bradley-Terry scores (Elo scale) per player with their 95% bootstrap interval, best on top."""
    d = scores.sort_values("score").assign(plus=scores["ci_high"] - scores["score"], minus=scores["score"] - scores["ci_low"])
    fig = px.scatter(d, x="score", y="player", error_x="plus", error_x_minus="minus", title=title,
                     hover_data={"votes": True, "wins": True, "losses": True, "plus": False, "minus": False},
                     labels={"score": "score (Elo scale; 95% bootstrap interval)", "player": ""})
    fig.add_vline(x=1000, line_dash="dot", line_color="grey", annotation_text="average player")
    fig.update_traces(marker_size=11)
    return fig.update_layout(height=120 + 60 * len(d), margin={"l": 10, "r": 10, "t": 60, "b": 40})


def token_figure(frame: pd.DataFrame, value: str, spans, title: str, heat: bool = False) -> go.Figure:
    """Inside view (frames of backend.inside.data): `value` per token for each row (a model: one line on its own
    axis; a layer when `heat`: a heatmap), token ticks on x, highlighted spans [(label, start, end)] shaded."""
    if heat:
        grid = frame.pivot(index="row", columns="position", values=value).reindex(frame["row"].unique())
        fig = px.imshow(grid, aspect="auto", color_continuous_scale="Viridis", title=title, labels={"color": value})
    else:
        fig = px.line(frame, x="position", y=value, facet_row="row", color="row", hover_data=["token"], title=title,
                      height=130 + 170 * frame["row"].nunique(), labels={"row": ""})
        fig.update_yaxes(matches=None, title=None).for_each_annotation(lambda a: a.update(text=""))
        fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    ticks = frame.drop_duplicates("position").iloc[:: max(1, frame["position"].nunique() // 60)]
    fig.update_xaxes(tickvals=ticks["position"], ticktext=ticks["token"], tickangle=-60)
    for i, (label, start, end) in enumerate(spans):  # each label written once, at its first span
        fig.add_vrect(x0=start - 0.5, x1=end - 0.5, fillcolor="orange", opacity=0.25, line_width=0,
                      **({"annotation_text": label} if label not in [s[0] for s in spans[:i]] else {}))
    return fig
