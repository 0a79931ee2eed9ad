"""Data frames and plotly figures for the experiment pages (no Streamlit, no torch, no duckdb).

Everything is computed from stored rows, so a run imported from a GPU machine, a CLI run and a
cancelled run all plot the same way. Accuracy points are recomputed from predictions (so partial runs
plot too) with n and a 95% Wilson interval; `filter` picks the extraction rule ("strict", "flexible",
or "acc" for choice scoring).
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.experiments.metrics import highlight_segments, wilson_interval

INSTANCE_KEYS = ("query", "line", "prompt_tokens", "task")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:=&\"'^])")


def scored(preds: pd.DataFrame, filt: str) -> pd.DataFrame:
    """Predictions with the point parameters as columns and `value` = the score under `filt`.

    Rows without a score (e.g. the prompt was beyond a model's limit) are dropped."""
    if preds.empty:
        return pd.DataFrame()
    params = pd.DataFrame([p if isinstance(p, dict) else {} for p in preds["params"]], index=preds.index)

    def value(extra):
        scores = (extra or {}).get("scores") or {}
        return scores.get(filt, scores.get("acc"))

    out = pd.concat([preds[["instance_id", "model", "score"]], params.drop(
        columns=[c for c in params.columns if c in ("score", "model", "instance_id")])], axis=1)
    out["value"] = [value(e if isinstance(e, dict) else None) for e in preds["extra"]]
    return out[out["score"].notna() & out["value"].notna()]


def accuracy_table(preds: pd.DataFrame, by: list[str], filt: str) -> pd.DataFrame:
    """model x `by` -> accuracy, n, ci_low, ci_high (95% Wilson)."""
    df = scored(preds, filt)
    cols = ["model", *by, "accuracy", "n", "ci_low", "ci_high"]
    if df.empty or any(b not in df.columns for b in by):
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in df.groupby(["model", *by], dropna=False, sort=True):
        n, total = len(g), float(g["value"].sum())
        lo, hi = wilson_interval(total, n)
        rows.append([*key, total / n, n, lo, hi])
    return pd.DataFrame(rows, columns=cols)


def filters_of(preds: pd.DataFrame) -> list[str]:
    names: list[str] = []
    for e in preds.get("extra", []):
        for k in ((e or {}).get("scores") or {}) if isinstance(e, dict) else []:
            if k not in names:
                names.append(k)
    return names


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _band(fig, x, lo, hi, color, name):
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                             fillcolor=_rgba(color, 0.13), line={"width": 0}, hoverinfo="skip",
                             showlegend=False, legendgroup=name))


PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


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


def heatmap_grid(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """depth (rows) x length (columns) accuracy for one model."""
    g = table[table["model"] == model]
    return g.pivot_table(index="depth", columns="length", values="accuracy", aggfunc="mean").sort_index()


def heatmap_figure(grid: pd.DataFrame, title: str, train_context: int | None = None, diff: bool = False,
                   ns: pd.DataFrame | None = None) -> go.Figure:
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


EFFICIENCY = [("prefill_ms", "prefill (ms)"), ("tpot_ms", "decode time per token (ms)"),
              ("peak_mem_bytes", "peak memory (MiB)"), ("cache_bytes", "cache (MiB)")]


def _target_length(extra, prompt_tokens) -> float:
    """The sweep's target length of a measurement row (its prompt length when it has none)."""
    params = (extra or {}).get("params") if isinstance(extra, dict) else None
    length = (params or {}).get("length")
    return float(length) if length is not None else float(prompt_tokens)


def efficiency_figure(meas: pd.DataFrame) -> go.Figure | None:
    """Prefill time, decode time per token, peak memory and cache bytes against prompt length per model
    (medians of prompt length and value over the instances of each target length)."""
    d = meas[meas["metric"].isna()] if "metric" in meas.columns else meas
    d = d.dropna(subset=["prompt_tokens"])
    if d.empty:
        return None
    d = d.assign(peak_mem_bytes=d["peak_mem_bytes"] / 2**20, cache_bytes=d["cache_bytes"] / 2**20,
                 point=[_target_length(e, t) for e, t in zip(d.get("extra", [None] * len(d)), d["prompt_tokens"],
                                                             strict=True)])
    kinds = {r["model"]: (r.get("peak_mem_kind") or "", r.get("cache_kind") or "", r.get("device") or "")
             for _, r in d.iterrows()}
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in EFFICIENCY])
    models = list(dict.fromkeys(d["model"]))
    for i, (col, _title) in enumerate(EFFICIENCY):
        r, c = i // 2 + 1, i % 2 + 1
        for m in models:
            g = d[(d["model"] == m)].dropna(subset=[col])
            if g.empty:
                continue
            g = g.groupby("point", as_index=False)[["prompt_tokens", col]].median().sort_values("prompt_tokens")
            mem, cache, dev = kinds.get(m, ("", "", ""))
            label = f"{m} ({cache}, {mem}, {dev})" if cache or mem else m
            fig.add_trace(go.Scatter(x=g["prompt_tokens"], y=g[col], mode="lines+markers", name=label,
                                     legendgroup=m, showlegend=i == 0,
                                     line={"color": PALETTE[models.index(m) % len(PALETTE)]}), row=r, col=c)
        fig.update_xaxes(title_text="prompt tokens", row=r, col=c)
    fig.update_layout(height=620, legend={"orientation": "h", "y": -0.12})
    return fig


def compare_runs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Instances of two runs (matched on instance id and model) whose score or extracted answer changed."""
    cols = ["instance_id", "model", "score", "extracted", "output", "prompt"]
    if a.empty or b.empty:
        return pd.DataFrame(columns=["instance_id", "model", "change", "score_a", "score_b",
                                     "extracted_a", "extracted_b", "same_prompt"])
    m = a[cols].merge(b[cols], on=["instance_id", "model"], suffixes=("_a", "_b"))
    changed = m[(m["score_a"].fillna(-1) != m["score_b"].fillna(-1)) | (m["extracted_a"] != m["extracted_b"])]
    out = changed.assign(
        change=[("fixed" if (sb or 0) > (sa or 0) else "broke" if (sb or 0) < (sa or 0) else "answer changed")
                for sa, sb in zip(changed["score_a"], changed["score_b"], strict=True)],
        same_prompt=changed["prompt_a"] == changed["prompt_b"])
    return out[["instance_id", "model", "change", "score_a", "score_b", "extracted_a", "extracted_b",
                "same_prompt"]].reset_index(drop=True)


def compare_summary(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per model: instances in both runs, how many changed, fixed and broke."""
    both = a[["instance_id", "model"]].merge(b[["instance_id", "model"]], on=["instance_id", "model"])
    ch = compare_runs(a, b)
    rows = []
    for model in sorted(set(both["model"])):
        c = ch[ch["model"] == model]
        rows.append({"model": model, "instances in both": int((both["model"] == model).sum()),
                     "changed": len(c), "fixed": int((c["change"] == "fixed").sum()),
                     "broke": int((c["change"] == "broke").sum())})
    return pd.DataFrame(rows, columns=["model", "instances in both", "changed", "fixed", "broke"])


def markdown_escape(text: str) -> str:
    """Escape every markdown/LaTeX/emoji-shortcode character and keep line breaks: model text shows as text."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return escaped.replace("\r", "").replace("\n", "  \n")


def highlighted_markdown(text: str, rule: str) -> str:
    """Markdown for a generated chain with the extracted answer highlighted (every other character escaped)."""
    parts = []
    for piece, hit in highlight_segments(text, rule):
        esc = markdown_escape(piece)
        parts.append(f":orange-background[**{esc}**]" if hit and esc.strip() else esc)
    return "".join(parts)


def accuracy_history(meas: pd.DataFrame) -> pd.DataFrame:
    """Experiment accuracies over time, for the History page: one row per stored aggregate of a task's
    primary filter (run, time, experiment kind, model, sweep point as text, value, n, 95% interval)."""
    cols = ["created_at", "run_id", "kind", "model", "task", "point", "value", "n", "ci_low", "ci_high"]
    if meas.empty or "metric" not in meas.columns:
        return pd.DataFrame(columns=cols)
    m = meas[meas["metric"].fillna("").str.startswith("accuracy[")]
    rows = []
    for _, r in m.iterrows():
        extra = r["extra"] if isinstance(r.get("extra"), dict) else {}
        if not extra.get("primary"):
            continue
        point = ", ".join(f"{k}={v}" for k, v in sorted((extra.get("params") or {}).items()))
        rows.append([r.get("created_at"), r["run_id"], r.get("kind"), r["model"], extra.get("task"), point,
                     r["value"], r["n"], r["ci_low"], r["ci_high"]])
    return pd.DataFrame(rows, columns=cols)
