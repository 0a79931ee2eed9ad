"""Data frames and plotly figures for the RAG experiment (the Evaluation section of the RAG page).

No Streamlit, torch, faiss or duckdb here. Answer quality (exact match, token F1) is recomputed from the
stored predictions, so a cancelled or still-running run plots too; retrieval quality (recall@k, MRR) and
faithfulness come from the measurements a completed run stores (`backend.rag.rag_measurements`).
Every point carries n and a 95% Wilson interval (over fractional scores for F1, MRR and faithfulness).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from backend.experiments.metrics import token_f1, wilson_interval
from backend.experiments.views import PALETTE, accuracy_lines

COLUMNS = ["model", "k", "metric", "accuracy", "n", "ci_low", "ci_high"]
ANSWER_METRICS = {"exact match": "em", "token F1": "f1"}
STORED = {"recall@k": "recall@k", "mrr@k": "MRR@k", "faithfulness": "faithfulness", "token_f1": "token F1"}


def answer_table(preds: pd.DataFrame) -> pd.DataFrame:
    """model x k x metric ("exact match", "token F1") -> accuracy, n, 95% interval, from predictions.

    Exact match is the prediction's score (first line of the answer vs the reference); token F1 compares the
    same extracted answer with the reference word by word. Unscored rows (e.g. a model's error) are left out."""
    if preds is None or preds.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for _, p in preds.iterrows():
        params = p["params"] if isinstance(p["params"], dict) else {}
        if pd.isna(p["score"]) or params.get("k") is None:
            continue
        extracted = "" if p.get("extracted") is None or pd.isna(p.get("extracted")) else str(p["extracted"])
        rows.append({"model": p["model"], "k": int(params["k"]), "em": float(p["score"]),
                     "f1": token_f1(extracted, str(p["reference"]))})
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(rows)
    out = []
    for (model, k), g in df.groupby(["model", "k"], sort=True):
        for label, col in ANSWER_METRICS.items():
            n, total = len(g), float(g[col].sum())
            lo, hi = wilson_interval(total, n)
            out.append([model, k, label, total / n, n, lo, hi])
    return pd.DataFrame(out, columns=COLUMNS)


def stored_table(meas: pd.DataFrame) -> pd.DataFrame:
    """The run's stored RAG measurements (recall@k, MRR@k, faithfulness, token F1) as model x k x metric rows."""
    if meas is None or meas.empty or "metric" not in meas.columns:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for _, r in meas[meas["metric"].isin(list(STORED))].iterrows():
        extra = r["extra"] if isinstance(r.get("extra"), dict) else {}
        k = (extra.get("params") or {}).get("k")
        if k is None:
            continue
        lo = r.get("ci_low")
        hi = r.get("ci_high")
        if lo is None or pd.isna(lo):
            lo, hi = wilson_interval(float(r["value"]) * int(r["n"]), int(r["n"]))
        rows.append([r["model"], int(k), STORED[r["metric"]], float(r["value"]), int(r["n"]), float(lo), float(hi)])
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["metric", "model", "k"]).reset_index(drop=True)


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


def book_table(answers: pd.DataFrame, metric: str = "exact match") -> pd.DataFrame:
    """Closed-book (k = 0) against open-book (each k > 0) per model: condition, value, n, interval, and the
    change from closed-book."""
    t = answers[answers["metric"] == metric]
    cols = ["model", "condition", "k", metric, "n", "ci_low", "ci_high", "vs closed-book"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for model, g in t.groupby("model", sort=False):
        closed = g[g["k"] == 0]["accuracy"]
        base = float(closed.iloc[0]) if len(closed) else None
        for _, r in g.sort_values("k").iterrows():
            cond = "closed-book" if r["k"] == 0 else f"open-book k={r['k']}"
            delta = None if base is None or r["k"] == 0 else r["accuracy"] - base
            rows.append([model, cond, int(r["k"]), r["accuracy"], int(r["n"]), r["ci_low"], r["ci_high"], delta])
    return pd.DataFrame(rows, columns=cols)


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
