"""Data frames for the RAG experiment (the RAG evaluation page draws them with pages/components/charts.py).

No Streamlit, plotly, torch, faiss or duckdb here. Answer quality (exact match, token F1) is recomputed from the
stored predictions, so a cancelled or still-running run plots too; retrieval quality (recall@k, MRR) and
faithfulness come from the measurements a completed run stores (`backend.experiments.rag.rag_measurements`).
Every point carries n and a 95% Wilson interval (over fractional scores for F1, MRR and faithfulness).
"""

from __future__ import annotations

import pandas as pd

from backend.experiments.metrics import token_f1, wilson_interval

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


def position_table(preds: pd.DataFrame) -> pd.DataFrame:
    """Exact match by where the gold passage sat (rag-open v2): model x k x gold_pos (1 = first passage, k = last,
    right before the question) -> accuracy, n, 95% interval. Empty for runs without gold positions (v1)."""
    cols = ["model", "k", "gold_pos", "accuracy", "n", "ci_low", "ci_high"]
    if preds is None or preds.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for _, p in preds.iterrows():
        params = p["params"] if isinstance(p["params"], dict) else {}
        if pd.isna(p["score"]) or params.get("gold_pos") is None:
            continue
        rows.append((p["model"], int(params["k"]), int(params["gold_pos"]), float(p["score"])))
    if not rows:
        return pd.DataFrame(columns=cols)
    out = []
    for (model, k, pos), g in pd.DataFrame(rows, columns=["model", "k", "gold_pos", "s"]).groupby(
            ["model", "k", "gold_pos"], sort=True):
        n, total = len(g), float(g["s"].sum())
        lo, hi = wilson_interval(total, n)
        out.append([model, k, pos, total / n, n, lo, hi])
    return pd.DataFrame(out, columns=cols)


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
