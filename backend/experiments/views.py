"""Data frames for the experiment pages (no Streamlit, no plotly, no torch, no duckdb); the pages draw them
with pages/components/charts.py.

Everything is computed from stored rows, so a run imported from a GPU machine, a CLI run and a
cancelled run all plot the same way. Accuracy points are recomputed from predictions (so partial runs
plot too) with n and a 95% Wilson interval; `filter` picks the extraction rule ("strict", "flexible",
or "acc" for choice scoring).
"""

from __future__ import annotations

import re

import pandas as pd

from backend.experiments.metrics import highlight_segments, wilson_interval

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


def heatmap_grid(table: pd.DataFrame, model: str, values: str = "accuracy") -> pd.DataFrame:
    """depth (rows) x length (columns) accuracy (or `values`, e.g. "n") for one model."""
    g = table[table["model"] == model]
    return g.pivot_table(index="depth", columns="length", values=values, aggfunc="mean").sort_index()


EFFICIENCY = [("prefill_ms", "prefill (ms)"), ("tpot_ms", "decode time per token (ms)"),
              ("peak_mem_bytes", "peak memory (MiB)"), ("cache_bytes", "cache (MiB)")]


def _target_length(extra, prompt_tokens) -> float:
    """The sweep's target length of a measurement row (its prompt length when it has none)."""
    params = (extra or {}).get("params") if isinstance(extra, dict) else None
    length = (params or {}).get("length")
    return float(length) if length is not None else float(prompt_tokens)


def efficiency_table(meas: pd.DataFrame) -> pd.DataFrame:
    """Prefill time, decode time per token, peak memory and cache bytes (MiB) against prompt length per model:
    medians of prompt length and value over the instances of each target length. Long rows (model, label,
    measure, point, prompt_tokens, value), measures in EFFICIENCY order; `attrs["models"]` lists every
    model with timing rows (in order of appearance: the plots' colour order). `label` names the model with
    its cache kind, memory kind and device."""
    cols = ["model", "label", "measure", "point", "prompt_tokens", "value"]
    d = meas[meas["metric"].isna()] if "metric" in meas.columns else meas
    d = d.dropna(subset=["prompt_tokens"])
    out = pd.DataFrame(columns=cols)
    out.attrs["models"] = []
    if d.empty:
        return out
    d = d.assign(peak_mem_bytes=d["peak_mem_bytes"] / 2**20, cache_bytes=d["cache_bytes"] / 2**20,
                 point=[_target_length(e, t) for e, t in zip(d.get("extra", [None] * len(d)), d["prompt_tokens"],
                                                             strict=True)])
    kinds = {r["model"]: (r.get("peak_mem_kind") or "", r.get("cache_kind") or "", r.get("device") or "")
             for _, r in d.iterrows()}
    models = list(dict.fromkeys(d["model"]))
    parts = []
    for col, _title in EFFICIENCY:
        for m in models:
            g = d[(d["model"] == m)].dropna(subset=[col])
            if g.empty:
                continue
            g = g.groupby("point", as_index=False)[["prompt_tokens", col]].median().sort_values("prompt_tokens")
            mem, cache, dev = kinds.get(m, ("", "", ""))
            label = f"{m} ({cache}, {mem}, {dev})" if cache or mem else m
            parts.append(pd.DataFrame({"model": m, "label": label, "measure": col, "point": g["point"],
                                       "prompt_tokens": g["prompt_tokens"], "value": g[col]}, columns=cols))
    if parts:
        out = pd.concat(parts, ignore_index=True)
    out.attrs["models"] = models
    return out


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
