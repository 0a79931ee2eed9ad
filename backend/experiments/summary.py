"""Headline numbers of committed experiment results, straight from their JSONL files (no store, no duckdb).

    python -m backend experiment-summary results/exp_fewshot_h200.jsonl results/exp_rag_h200.jsonl ...

Prints, per run in each file, markdown tables of accuracy (or EM / F1 / recall@k for RAG) with n and the
95% Wilson interval, computed by the same functions the pages plot with (`views.accuracy_table`,
`rag_views.answer_table` / `stored_table`), under the same default answer filter as the page. The README's
Experiments numbers are pasted from this output.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd

from backend.experiments import rag_views as rv
from backend.experiments.views import accuracy_table
from store import open_results

KIND_BY = {"experiment-fewshot": (["k"], "acc"), "experiment-long-context": (["length"], "strict"),
           "experiment-cot": (["steps", "mode"], "strict"), "experiment-rag": (["k"], "strict")}


def table_keys(kind: str, preds: pd.DataFrame) -> tuple[list[str], str]:
    """(sweep keys, default filter) of a run's tables: long-context tasks sweep their own keys (recall: pairs,
    copy: words, pass key v2: needles and length)."""
    by, filt = KIND_BY.get(kind, (["k"], "strict"))
    if kind == "experiment-long-context" and not preds.empty:
        params = [p for p in preds["params"] if isinstance(p, dict)]
        for key in ("pairs", "words"):
            if params and all(key in p for p in params):
                return [key], filt
        if params and all("keys" in p for p in params):
            return ["keys", "length"], filt
    return list(by), filt


def load(path: str | Path) -> list[dict]:
    """[{run, end, predictions: DataFrame, measurements: DataFrame}] per run in a JSONL results file."""
    runs: dict[str, dict] = {}
    preds, meas = defaultdict(list), defaultdict(list)
    path = Path(path)
    with open_results(path) as f:  # plain, .gz or .xz
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            t = r.get("type")
            if t == "run":
                runs[r["run_id"]] = {"run": r, "end": None}
            elif t == "run_end":
                runs.setdefault(r["run_id"], {"run": None})["end"] = r
            elif t == "prediction":
                preds[r["run_id"]].append(r["data"])
            elif t == "measurement":
                meas[r["run_id"]].append(r["data"])
    for rid, d in runs.items():
        d["predictions"] = pd.DataFrame(preds.get(rid, []))
        d["measurements"] = pd.DataFrame(meas.get(rid, []))
    return list(runs.values())


def _fmt(t: pd.DataFrame, keys: list[str], value: str = "accuracy") -> str:
    if WIDE:
        return _wide(t, keys, value)
    cols = ["model", *keys, value, "n", "95% CI"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        ks = [str(int(r[k])) if isinstance(r[k], float) and float(r[k]).is_integer() else str(r[k]) for k in keys]
        lines.append(f"| {r['model']} | " + " | ".join(ks) + f" | {r['accuracy']:.2f} | {int(r['n'])} | "
                     f"{r['ci_low']:.2f}-{r['ci_high']:.2f} |")
    return "\n".join(lines)


def _wide(t: pd.DataFrame, keys: list[str], value: str = "accuracy") -> str:
    """The same numbers with the last key across columns: cells `value (95% CI)`, n once in the heading."""
    if t.empty:
        return "(no scored rows)"
    rows, col = keys[:-1], keys[-1]
    cols = sorted(t[col].unique())
    ns = sorted(set(t["n"].astype(int)))
    lab = lambda v: f"{v:g}" if isinstance(v, (int, float)) else str(v)  # noqa: E731
    head = ["model", *rows, *[f"{col}={lab(c)}" for c in cols]]
    lines = [f"{value}, n = {'/'.join(map(str, ns))} per cell, (95% Wilson CI):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, g in t.groupby(["model", *rows], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        cells = {r[col]: f"{r['accuracy']:.2f} ({r['ci_low']:.2f}-{r['ci_high']:.2f})" for _, r in g.iterrows()}
        lines.append("| " + " | ".join(lab(k) for k in key) + " | " + " | ".join(cells.get(c, "") for c in cols) + " |")
    return "\n".join(lines)


WIDE = False


def _unscored(preds: pd.DataFrame, by: list[str]) -> str:
    if preds.empty:
        return ""
    params = pd.DataFrame(list(preds["params"]), index=preds.index)
    miss = preds[preds["score"].isna()]
    if miss.empty:
        return ""
    out = []
    for key, g in miss.groupby([miss["model"], *[params.loc[miss.index, b] for b in by]]):
        errs = [str((e or {}).get("error", "")) for e in g["extra"]]
        out.append(f"- unscored {key}: {len(g)} rows, e.g. {errs[0]!r}")
    return "\n".join(out)


def _grid(t: pd.DataFrame, row: str, col: str) -> str:
    """model x `row` rows, `col` columns, accuracy cells (n per cell given once)."""
    cols = sorted(t[col].unique())
    ns = sorted(set(t["n"].astype(int)))
    lines = [f"accuracy by {row} (rows) and {col} (columns), n = {'/'.join(map(str, ns))} per cell:", "",
             f"| model | {row} | " + " | ".join(f"{c:g}" for c in cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for (m, r), g in t.groupby(["model", row], sort=True):
        cells = dict(zip(g[col], g["accuracy"], strict=True))
        lines.append(f"| {m} | {r:g} | " + " | ".join(f"{cells[c]:.1f}" if c in cells else "" for c in cols) + " |")
    return "\n".join(lines)


def _memory(meas: pd.DataFrame) -> str:
    """Cache size per model and target length (MiB, median over instances): deterministic, unlike the timings
    of a run that shared its device (`extra.workers`)."""
    if meas.empty or "cache_bytes" not in meas.columns:
        return ""
    m = meas[meas["cache_bytes"].notna()].copy()
    m["length"] = [(e or {}).get("params", {}).get("length") for e in m["extra"]]
    m = m[m["length"].notna()]
    if m.empty:  # recall / copy: no target lengths
        return ""
    workers = sorted({(e or {}).get("workers") for e in m["extra"]} - {None})
    g = m.groupby(["model", "length"])["cache_bytes"].median().unstack() / 2**20
    lines = [f"cache MiB (median; timing rows ran with workers={workers or [1]}):", "",
             "| model | " + " | ".join(str(int(c)) for c in g.columns) + " |", "|" + "---|" * (len(g.columns) + 1)]
    for model, row in g.iterrows():
        lines.append(f"| {model} | " + " | ".join("" if pd.isna(v) else f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)


def summarize(path: str | Path) -> str:
    out = []
    for d in load(path):
        run, end = d["run"] or {}, d["end"] or {}
        cfg, meta = run.get("config") or {}, run.get("meta") or {}
        summary = end.get("summary") or {}
        kind = run.get("kind")
        out.append(f"### {Path(path).name}: {kind} {cfg.get('task') or cfg.get('data')} run {run.get('run_id', '')[:8]} "
                   f"({run.get('name')}, {meta.get('device_name')}, {end.get('status')}, "
                   f"{summary.get('done')}/{summary.get('total')} instances, workers={meta.get('workers')})")
        preds = d["predictions"]
        if kind in KIND_BY and kind != "experiment-rag":
            by, filt = table_keys(kind, preds)
            out.append(f"filter: {filt}")
            t = accuracy_table(preds, by, filt)
            if kind == "experiment-cot" and WIDE:  # modes side by side, steps across
                t = t.sort_values(["model", "mode", "steps"])
                by = ["mode", "steps"]
            out.append(_fmt(t, by))
            if kind == "experiment-long-context" and "length" in by:
                out.append(_grid(accuracy_table(preds, ["length", "depth"], filt), "length", "depth"))
            out.append(_unscored(preds, by))
            if kind == "experiment-long-context":
                out.append(_memory(d["measurements"]))
        elif kind == "experiment-rag":
            answers = rv.answer_table(preds)
            for metric in ("exact match", "token F1"):
                out.append(_fmt(answers[answers["metric"] == metric], ["k"], metric))
            stored = rv.stored_table(d["measurements"])
            for metric in ("recall@k", "MRR@k", "faithfulness"):
                t = stored[stored["metric"] == metric]
                if not t.empty:
                    out.append(_fmt(t, ["k"], metric))
            out.append(_unscored(preds, ["k"]))
        out.append("")
    return "\n\n".join(x for x in out if x)
