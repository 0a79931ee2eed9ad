"""Pure pandas analysis of benchmark rows for the Performance page (no torch import).

Input: measurement rows of kind "bench" with `extra` expanded (`store.measurements(kinds="bench",
expand_extra=True)`). A "point" row has status ok / oom / error; "max_batch" rows give the largest batch
that ran at the paper setting.

- `curve`: one model's metric against prompt length (batch 1) or batch size.
- `crossover`: the first prompt length where the SSM's metric drops below the transformer's,
  interpolated on log-log axes between the two measured lengths around the sign change.
- `paper_ratio`: the Mamba paper's setting (prompt 2048, 128 new tokens, largest batch each fits):
  throughput = batch x new tokens / (prefill + decode time), SSM over transformer.
- `cache_split_sentences`: each model's cache for one sequence as state (constant) + KV per token, from the
  `state_bytes` / `kv_bytes_per_token` every row carries (a hybrid has both).
- `*_sentence`: what the page says, computed from the data.
"""

from __future__ import annotations

import math

import pandas as pd

OWN_PATH_EXCLUDE = ("hf-generate",)  # baseline rows, never a model's own number
CLAIM_LOW = 4.0  # the Mamba paper: "4-5x higher inference throughput"


def points(df: pd.DataFrame, ok_only: bool = True, own_path: bool = True) -> pd.DataFrame:
    """Point rows; by default only successful runs on each model's own (best) path."""
    if df is None or df.empty:
        return pd.DataFrame()
    out = df[df.get("metric", "point") == "point"] if "metric" in df.columns else df
    if ok_only and "status" in out.columns:
        out = out[out["status"] == "ok"]
    if own_path and "phase" in out.columns:
        out = out[out["phase"].isin(["context", "long", "batch"])]
    return out


def curve(df: pd.DataFrame, model: str, y: str, x: str = "prompt_tokens", batch: int | None = 1,
          new_tokens: int | None = None, run_id: str | None = None) -> pd.DataFrame:
    """Median of `y` per `x` for one model (rows with y missing dropped), sorted by x."""
    d = points(df)
    if d.empty or y not in d.columns:
        return pd.DataFrame(columns=[x, y])
    d = d[d["model"] == model]
    if run_id is not None:
        d = d[d["run_id"] == run_id]
    if batch is not None and x != "batch":
        d = d[d["batch"] == batch]
    if new_tokens is not None:
        d = d[d["new_tokens"] == new_tokens]
    d = d.dropna(subset=[y])
    if d.empty:
        return pd.DataFrame(columns=[x, y])
    return d.groupby(x, as_index=False)[y].median().sort_values(x)


def crossover(ssm: pd.DataFrame, tf: pd.DataFrame, y: str, x: str = "prompt_tokens") -> dict:
    """Where the SSM's `y` (lower is better) becomes lower than the transformer's.

    Returns {"kind": "always" | "never" | "crossing" | "unknown", "x": float | None, "max_x": int | None}.
    Only x values measured for both are compared; a crossing is interpolated in log-log space."""
    if ssm.empty or tf.empty:
        return {"kind": "unknown", "x": None, "max_x": None}
    both = ssm.merge(tf, on=x, suffixes=("_ssm", "_tf")).sort_values(x)
    if both.empty:
        return {"kind": "unknown", "x": None, "max_x": None}
    xs = both[x].tolist()
    diff = [math.log(a) - math.log(b) for a, b in zip(both[f"{y}_ssm"], both[f"{y}_tf"], strict=True)]
    max_x = int(xs[-1])
    # the measured values at the longest length both reached, and how far each side was measured alone
    extra = {"ssm_at_max": float(both[f"{y}_ssm"].iloc[-1]), "tf_at_max": float(both[f"{y}_tf"].iloc[-1]),
             "ssm_max_x": int(ssm[x].max()), "tf_max_x": int(tf[x].max())}
    if diff[0] < 0 and all(d < 0 for d in diff):
        return {"kind": "always", "x": float(xs[0]), "max_x": max_x, **extra}
    for i in range(1, len(xs)):
        if diff[i - 1] >= 0 > diff[i] and all(d < 0 for d in diff[i:]):
            lx0, lx1 = math.log(xs[i - 1]), math.log(xs[i])
            t = diff[i - 1] / (diff[i - 1] - diff[i])
            return {"kind": "crossing", "x": float(math.exp(lx0 + t * (lx1 - lx0))), "max_x": max_x, **extra}
    return {"kind": "never", "x": None, "max_x": max_x, **extra}


def pairs_in(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(ssm, transformer) pairs whose both models have rows (partner recorded on the SSM's rows)."""
    d = points(df)
    if d.empty or "partner" not in d.columns:
        return []
    models = set(d["model"])
    pairs = d.dropna(subset=["partner"])[["model", "partner"]].drop_duplicates()
    return [(a, b) for a, b in pairs.itertuples(index=False) if b in models]


def paper_ratio(df: pd.DataFrame, ssm: str, tf: str, prompt_len: int = 2048, new_tokens: int = 128) -> dict:
    """Throughput at the paper's setting, each model at the largest batch that ran there."""
    d = points(df)
    out = {"ssm_model": ssm, "tf_model": tf, "prompt_len": prompt_len, "new_tokens": new_tokens}
    for side, model in (("ssm", ssm), ("tf", tf)):
        rows = d[(d["model"] == model) & (d["prompt_tokens"] == prompt_len) & (d["new_tokens"] == new_tokens)]
        rows = rows.dropna(subset=["e2e_tok_s"]) if "e2e_tok_s" in rows.columns else rows.iloc[0:0]
        if rows.empty:
            out[side] = None
            continue
        best = rows.sort_values("batch").iloc[-1]
        capped, stopped_by = None, None
        if "metric" in df.columns:
            mb = df[(df["metric"] == "max_batch") & (df["model"] == model)]
            if not mb.empty and "capped" in mb.columns:
                capped = bool(mb.iloc[-1]["capped"])
            if not mb.empty and "stopped_by" in mb.columns and isinstance(mb.iloc[-1]["stopped_by"], str):
                stopped_by = mb.iloc[-1]["stopped_by"]
            elif capped is not None:
                stopped_by = "end_of_list" if capped else "oom"
            if mb.empty:
                stopped_by = "unfinished"  # no max_batch row: the batch sweep was cut short (e.g. a crash)
        out[side] = {"batch": int(best["batch"]), "e2e_tok_s": float(best["e2e_tok_s"]),
                     "decode_tok_s_batch": _f(best.get("decode_tok_s_batch")), "path": best.get("path"),
                     "capped": capped, "stopped_by": stopped_by}
    if out["ssm"] and out["tf"]:
        out["ratio"] = out["ssm"]["e2e_tok_s"] / out["tf"]["e2e_tok_s"]
        ds, dt = out["ssm"]["decode_tok_s_batch"], out["tf"]["decode_tok_s_batch"]
        out["decode_ratio"] = ds / dt if ds and dt else None
    else:
        out["ratio"] = out["decode_ratio"] = None
    return out


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


STOPPED_BY = {"oom": "out of memory (the next batch)", "end_of_list": "end of the batch list (no OOM)",
              "time_budget": "time budget (larger batches not tried; no OOM)",
              "error": "an error (the next batch failed)", "unfinished": "sweep did not finish"}


def claim_sentence(r: dict, device: str = "") -> str:
    """Whether the 4-5x throughput claim holds for this pair, stated with the numbers."""
    where = f" on {device}" if device else ""
    sm, tm = r["ssm_model"], r["tf_model"]
    if r.get("ratio") is None:
        missing = [m for side, m in (("ssm", sm), ("tf", tm)) if not r.get(side)]
        return (f"The 4-5x claim cannot be judged for {sm} vs {tm}{where}: no rows at prompt "
                f"{r['prompt_len']} + {r['new_tokens']} new tokens for {', '.join(missing)}.")
    s, t = r["ssm"], r["tf"]

    notes = {"end_of_list": " (the largest batch tried; it did not run out of memory)",
             "time_budget": " (the largest batch measured: the sweep stopped by the time budget, not by memory; "
                            "larger batches were not tried)",
             "oom": " (the next batch ran out of memory)",
             "error": " (the next batch failed: see the run's errors)",
             "unfinished": " (its batch sweep did not finish: larger batches were not measured)"}

    def side(name, v):
        cap = notes.get(v.get("stopped_by") or "", "")
        return f"{name} {v['e2e_tok_s']:,.0f} tok/s at batch {v['batch']}{cap} on path {v['path']}"

    verdict = ("holds" if r["ratio"] >= CLAIM_LOW else "does not hold")
    # the paper compares each model at the largest batch that fits in memory: say when a side never got there
    short = [name for name, v in ((sm, s), (tm, t)) if v.get("stopped_by") not in ("oom", None)]
    caveat = ""
    if short:
        who = " and ".join(short)
        caveat = (f" (at the largest batches measured: {who} did not reach a memory limit, so these may not "
                  f"be the largest batch each fits)")
    return (f"At prompt {r['prompt_len']} + {r['new_tokens']} new tokens{where}: {side(sm, s)}, vs "
            f"{side(tm, t)}: {fmt_ratio(r['ratio'])}. The paper's 4-5x throughput claim {verdict} for this pair "
            f"in this run{caveat}." + (f" Decode alone (prefill excluded): {fmt_ratio(r['decode_ratio'])}."
                                       if r.get("decode_ratio") else ""))


def _num(v: float) -> str:
    return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"


def crossover_sentence(c: dict, ssm: str, tf: str, what: str = "decode (time per output token)",
                       unit: str = "ms") -> str:
    if c["kind"] == "unknown":
        return f"No context lengths measured for both {ssm} and {tf}: no {what} comparison."
    if c["kind"] == "always":
        out = f"{ssm}'s {what} is faster than {tf}'s at every measured context length (from {c['x']:,.0f} tokens"
        out += f", measured up to {c['max_x']:,})." if c["max_x"] != int(c["x"]) else ")."
    elif c["kind"] == "never":
        out = f"{ssm}'s {what} is not faster than {tf}'s at any measured context length up to {c['max_x']:,} tokens."
    else:
        out = (f"{ssm}'s {what} becomes faster than {tf}'s at about {c['x']:,.0f} tokens of context "
               f"(measured up to {c['max_x']:,}).")
    if c.get("ssm_at_max") is not None:
        out += (f" At {c['max_x']:,} tokens: {ssm} {_num(c['ssm_at_max'])} {unit}, {tf} {_num(c['tf_at_max'])} {unit} "
                f"({tf} / {ssm} = {c['tf_at_max'] / c['ssm_at_max']:.2f}x).")
    for name, mx in ((ssm, c.get("ssm_max_x")), (tf, c.get("tf_max_x"))):
        if mx is not None and mx < max(c.get("ssm_max_x") or 0, c.get("tf_max_x") or 0):
            other = ssm if name == tf else tf
            out += (f" {name} was measured only up to {mx:,} tokens ({other} up to "
                    f"{max(c['ssm_max_x'], c['tf_max_x']):,}): no comparison beyond that.")
    return out


def rooflines(kb: pd.DataFrame) -> list[tuple[str, pd.DataFrame, float | None, pd.DataFrame]]:
    """Kernel-bench rows split into one roofline per device: (device, our kernel rows, that device's measured
    copy bandwidth, peer rows such as `mamba-ssm-cuda`), devices sorted. Each device's rows come from its latest
    run, and its ceiling from the same run (an H100 run and an H200 run under one ceiling was the bug)."""
    if kb is None or kb.empty or "device" not in kb.columns:
        return []
    out = []
    for device, rows in kb.groupby("device", sort=True):
        if "created_at" in rows.columns and "run_id" in rows.columns:
            rows = rows[rows["run_id"] == rows.sort_values("created_at")["run_id"].iloc[-1]]
        metric = rows["metric"] if "metric" in rows.columns else pd.Series("", index=rows.index)
        ceil = rows[metric == "copy_gbps"]
        out.append((str(device), rows[metric == "kernel_ms"].copy(),
                    float(ceil["value"].iloc[-1]) if not ceil.empty else None, rows[metric == "peer_ms"].copy()))
    return out


def _bytes(n: float) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:,.1f} {unit}"
    return f"{n:,.0f} B"


def cache_split_sentences(df: pd.DataFrame, at_tokens: int = 2048) -> list[str]:
    """One sentence per model whose rows carry `state_bytes` and `kv_bytes_per_token`: the conv + SSM state
    one sequence keeps whatever its length, the K + V each token adds, and the total at `at_tokens`."""
    d = points(df)
    if d.empty or not {"state_bytes", "kv_bytes_per_token"} <= set(d.columns):
        return []
    out = []
    for model, g in d.groupby("model", sort=True):
        sb, kv = g["state_bytes"].dropna(), g["kv_bytes_per_token"].dropna()
        if sb.empty or kv.empty:
            continue
        sb, kv = float(sb.iloc[0]), float(kv.iloc[0])
        if sb and kv:
            out.append(f"**{model}**: {_bytes(sb)} of conv + SSM state whatever the length, plus {_bytes(kv)} of "
                       f"K and V per token from its attention layers ({_bytes(sb + kv * at_tokens)} in all at "
                       f"{at_tokens:,} tokens, of which the state is {sb / (sb + kv * at_tokens):.0%}).")
        elif sb:
            out.append(f"**{model}**: {_bytes(sb)} of conv + SSM state whatever the length; no KV cache.")
        elif kv:
            out.append(f"**{model}**: {_bytes(kv)} of K and V per token ({_bytes(kv * at_tokens)} at "
                       f"{at_tokens:,} tokens); no recurrent state.")
    return out
