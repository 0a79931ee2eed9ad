"""The bundled models' held-out evaluation as a compact leaderboard, read from the committed records.

Which records: the results/train_*.jsonl(.gz) file whose "train" run has the same steps, tokens seen and
final loss as the checkpoint's own assets/models/<name>/train_summary.json, so the numbers belong to the
weights on disk (a retrained checkpoint without its records shows no numbers rather than old ones). Its
"toyworld_eval" runs hold one row per task and setting with n and a 95% interval (Wilson; perplexity:
bootstrap over documents), written by `python -m backend evaluate`.

    evaluation_rows(models_dir, results_dir) -> DataFrame  model, family, task, setting, metric, value, n,
                                                           ci_low, ci_high, chance, device, source
    leaderboard(rows, headline=True) -> DataFrame          one row per task and setting, one column per model
                                                           ("0.810 [0.750, 0.858]"), plus n and chance
    model_card(folder) -> str                              the model card (README.md), or ""
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from store import open_results, result_files

MATCH_KEYS = ("steps", "tokens_seen", "final_loss")
COLUMNS = ["model", "family", "task", "setting", "metric", "value", "n", "ci_low", "ci_high", "chance", "device",
           "source"]
# The settings the start page and the Models page show first (the full table is one click away).
HEADLINE = [("qa_open", ""), ("qa_closed", ""), ("fewshot", "sentiment, k=4"), ("fewshot", "arbitrary, k=4"),
            ("arithmetic", "direct, 2 steps"), ("arithmetic", "cot, 2 steps"), ("passkey", "1024 tokens"),
            ("passkey", "2048 tokens"), ("recall", "8 pairs"), ("perplexity", "")]
TASK_LABELS = {"qa_open": "open-book QA (held-out passage)", "qa_closed": "closed-book QA (training world)",
               "fewshot": "few-shot labelling", "arithmetic": "arithmetic word problems",
               "passkey": "pass key retrieval", "recall": "associative recall", "perplexity": "perplexity"}


def _lines(path: Path):
    try:
        with open_results(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
    except (OSError, EOFError):
        return


def setting_of(r: dict) -> str:
    task = r.get("task")
    if task == "fewshot":
        return f"{r.get('fewshot_task')}, k={r.get('k')}"
    if task == "arithmetic":
        steps = r.get("steps")
        return f"{r.get('mode')}, {steps} step{'s' if steps != 1 else ''}"
    if task == "passkey":
        return f"{r.get('context_tokens')} tokens"
    if task == "recall":
        return f"{r.get('n_pairs')} pairs"
    return ""


def _summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "train_summary.json").read_text())
    except (OSError, ValueError):
        return {}


def evaluation_rows(models_dir: Path, results_dir: Path) -> pd.DataFrame:
    """Held-out evaluation rows of every bundled checkpoint that has matching committed records."""
    wanted = {}
    for folder in sorted(Path(models_dir).iterdir()) if Path(models_dir).is_dir() else []:
        s = _summary(folder)
        if s and all(k in s for k in MATCH_KEYS):
            wanted[folder.name] = tuple(s[k] for k in MATCH_KEYS)
    rows, found = [], set()
    files = result_files(results_dir, "train_*")
    for path in files:
        kinds, train, evals = {}, {}, []
        for rec in _lines(path):
            if rec.get("type") == "run":
                kinds[rec.get("run_id")] = rec.get("kind")
            elif rec.get("type") == "measurement" and isinstance(rec.get("data"), dict):
                d, kind = rec["data"], kinds.get(rec.get("run_id"))
                if kind == "train":
                    train[d.get("model")] = tuple(d.get(k) for k in MATCH_KEYS)
                elif kind == "toyworld_eval":
                    evals.append(d)
        for d in evals:
            m = d.get("model")
            if m in wanted and m not in found and train.get(m) == wanted[m] and d.get("n"):
                rows.append({"model": m, "family": d.get("family"), "task": d.get("task"), "setting": setting_of(d),
                             "metric": d.get("metric"), "value": d.get("value"), "n": d.get("n"),
                             "ci_low": d.get("ci_low"), "ci_high": d.get("ci_high"), "chance": d.get("chance"),
                             "device": d.get("device"), "source": path.name})
        found |= {m for m in wanted if train.get(m) == wanted[m]}
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(r) -> str:
    if r["metric"] == "perplexity":
        return f"{r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def leaderboard(rows: pd.DataFrame, headline: bool = True) -> pd.DataFrame:
    """task x setting rows, one column per model with "value [95% interval]"; n and chance beside them."""
    if rows.empty:
        return pd.DataFrame(columns=["task", "setting", "metric", "n", "chance"])
    rows = rows.assign(cell=[_cell(r) for _, r in rows.iterrows()])
    if headline:
        keep = set(HEADLINE)
        rows = rows[[(t, s) in keep for t, s in zip(rows["task"], rows["setting"], strict=True)]]
    order = {k: i for i, k in enumerate(HEADLINE)}
    wide = rows.pivot_table(index=["task", "setting", "metric"], columns="model", values="cell", aggfunc="first")
    meta = rows.groupby(["task", "setting", "metric"]).agg(n=("n", "max"), chance=("chance", "max"))
    out = wide.join(meta).reset_index()
    out["_order"] = [order.get((t, s), len(order)) for t, s in zip(out["task"], out["setting"], strict=True)]
    out = out.sort_values(["_order", "task", "setting"]).drop(columns="_order").reset_index(drop=True)
    out["task"] = out["task"].map(lambda t: TASK_LABELS.get(t, t))
    out["chance"] = out["chance"].map(lambda c: "" if c is None or pd.isna(c) else f"{c:.2f}")
    out.columns.name = None
    return out


def model_card(folder: str | Path) -> str:
    try:
        return (Path(folder) / "README.md").read_text(encoding="utf-8")
    except OSError:
        return ""
