"""Markdown tables of committed benchmark results, computed through the results store.

Each function takes one results file (`results/*.jsonl` or `*.jsonl.gz`), imports it into a temporary DuckDB
store (`store.open_store`) and returns markdown:

- `bench_markdown`: a `python -m backend bench` run: per-model speed and memory, the Mamba paper's throughput
  setting, crossovers, baselines; computed with `backend/bench/analysis.py`, as the Performance page does.
- `kernel_markdown`: a `kernel-bench` run (time, % of copy bandwidth, speed-ups, launch-config sweep).
- `ssm_e2e_markdown`: an `ssm-bench` run (prefill time and peak memory against length, decode tokens/s).
- `aot_markdown`: `kernel-aot` runs (registers, spills, shared memory / LDS per kernel and target).

docs/results.md is assembled from these by `backend/experiments/results_doc.py`.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pandas as pd

from backend.bench import analysis as A
from store import open_store

STOPPED = {"oom": "next batch out of memory", "end_of_list": "end of the batch list", "time_budget": "time budget",
           "error": "next batch failed", "unfinished": "sweep did not finish", None: "not recorded"}
LONG = 32768  # the long context the tables quote (the longest every committed GPU run reached)


def load(path: Path, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, measurements with `extra` expanded) of `kind` in one results file, via a temporary store."""
    with tempfile.TemporaryDirectory() as d:
        st = open_store(Path(d) / "results.duckdb")
        st.import_jsonl(path)
        runs = st.runs(kind=kind).sort_values("created_at").reset_index(drop=True)
        return runs, st.measurements(kinds=kind, expand_extra=True)


def _ok(v) -> bool:
    """Whether `v` is a measured value (not None, not NaN)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _f(v, spec: str, unit: str = "") -> str:
    """`v` formatted with `spec` (and a unit), or a dash when it was not measured."""
    return format(v, spec) + unit if _ok(v) else "—"


def _num(v: float) -> str:
    """Three significant digits below 100, whole numbers above."""
    return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"


def _ms(v) -> str:
    """Milliseconds, as µs below 0.1 ms."""
    if not _ok(v):
        return "—"
    return f"{v * 1e3:.1f} µs" if v < 0.1 else f"{v:.3f} ms" if v < 10 else f"{v:,.1f} ms"


def _run_line(file: str, run: pd.Series) -> str:
    """The file, run name and status, device, commit, library versions and dtype, as one sentence."""
    meta, cfg = run["meta"] or {}, run["config"] or {}
    versions = ", ".join(f"{k} {meta[k]}" for k in ("torch", "triton", "transformers", "cuda", "hip") if meta.get(k))
    sha = (meta.get("git_sha") or "")[:7] or "not recorded"
    name = f"run `{run['name']}`" if run["name"] else "run"
    dtype = cfg.get("dtype_resolved", "").replace("torch.", "")
    return (f"**`{file}`**: {name} ({run['status']}) on {meta.get('device_name')}, commit {sha}; {versions}"
            + (f"; {dtype}" if dtype else "") + ".")


def _at(m: pd.DataFrame, model: str, y: str, length: int) -> float | None:
    """`analysis.curve`'s median of `y` at one prompt length (batch 1), or None where it was not measured."""
    c = A.curve(m, model, y)
    v = c[c["prompt_tokens"] == length][y] if not c.empty else []
    return None if len(v) == 0 else float(v.iloc[0])


def _order(m: pd.DataFrame) -> list[str]:
    """Models with point rows: each transformer after the SSMs paired with it, then the unpaired ones."""
    pts = A.points(m)
    pairs = A.pairs_in(m)
    out: list[str] = []
    for tf in sorted({t for _, t in pairs}):
        out += sorted({s for s, t in pairs if t == tf} - set(out)) + [tf]
    return out + sorted(set(pts["model"] if not pts.empty else []) - set(out))


def _side(m: pd.DataFrame, model: str) -> dict | None:
    """One model's point at the paper setting (largest batch that ran), as `analysis.paper_ratio` finds it."""
    return A.paper_ratio(m, model, model)["ssm"]


def _cross(c: dict, unit: str = "ms") -> str:
    """An `analysis.crossover` result in words, with both values at the longest common length."""
    if c["kind"] == "unknown":
        return "no length measured for both"
    there = f"{_num(c['ssm_at_max'])} vs {_num(c['tf_at_max'])} {unit} at {c['max_x']:,}"
    if c["kind"] == "always":
        return f"at every length measured for both, {c['x']:,.0f} ... {c['max_x']:,} ({there})"
    if c["kind"] == "crossing":
        return f"from about {c['x']:,.0f} tokens ({there})"
    return f"not up to {c['max_x']:,} ({there})"


def bench_markdown(path: Path) -> str:
    """A benchmark file's run, its per-model table, pairs, memory and baselines, as markdown."""
    runs, m = load(path, "bench")
    if runs.empty:
        return f"**`{path.name}`**: no benchmark run."
    run = runs.iloc[-1]
    summ, cfg = run["summary"] or {}, run["config"] or {}
    pts = m[m["metric"] == "point"]
    count = {s: int((pts["status"] == s).sum()) for s in ("ok", "oom", "error")}
    out = [_run_line(path.name, run) + f" Budget {_f(cfg.get('budget_s'), '.0f', ' s')}, elapsed "
           f"{_f(summ.get('elapsed_s'), '.1f', ' s')}; {len(pts)} points (counted from the rows): {count['ok']} ok, "
           f"{count['oom']} out of memory, {count['error']} errors."]
    if summ.get("not_run"):
        out += ["", "Not run: " + "; ".join(dict.fromkeys(summ["not_run"])) + "."]  # once each, whatever --rounds
    models = _order(m)
    weights = {r["model"]: r.get("weights") for _, r in pts.iterrows()}
    out += ["", f"| model (weights, path) | decode tok/s @512 | @{LONG:,} | TPOT @512 | TPOT @{LONG:,} | prefill @512 | "
            f"prefill @{LONG:,} | largest batch (why the sweep stopped) | paper setting e2e tok/s | decode-only tok/s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        s = _side(m, model)
        paths = A.points(m[m["model"] == model])["path"].value_counts()
        path_ = s["path"] if s else sorted(paths.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]
        cells = [_f(_at(m, model, "decode_tok_s", L), ",.0f") for L in (512, LONG)]
        cells += [_f(_at(m, model, "tpot_ms", L), ".3f", " ms") for L in (512, LONG)]
        cells += [_f(_at(m, model, "prefill_ms", L), ".1f", " ms") for L in (512, LONG)]
        cells += [f"{s['batch']:,} ({STOPPED.get(s['stopped_by'], s['stopped_by'])})", f"{s['e2e_tok_s']:,.0f}",
                  _f(s["decode_tok_s_batch"], ",.0f")] if s else ["—", "—", "—"]
        out.append(f"| {model} ({weights.get(model) or '?'}, `{path_}`) | " + " | ".join(cells) + " |")
    pairs = sorted(A.pairs_in(m), key=lambda p: (p[1], p[0]))
    if pairs:
        out += ["", "| pair | SSM / transformer, paper setting end to end | decode only | 4-5x claim | SSM decode "
                "faster per token (TPOT, batch 1) | SSM prefill faster (batch 1) |", "|---|---|---|---|---|---|"]
    for ssm, tf in pairs:
        r = A.paper_ratio(m, ssm, tf)
        if r["ratio"] is None:
            out.append(f"| {ssm} vs {tf} | — | — | cannot be judged | | |")
            continue
        verdict = "holds" if r["ratio"] >= A.CLAIM_LOW else "does not hold"
        cross = [_cross(A.crossover(A.curve(m, ssm, y), A.curve(m, tf, y), y)) for y in ("tpot_ms", "prefill_ms")]
        out.append(f"| {ssm} vs {tf} | **{A.fmt_ratio(r['ratio'])}** (batch {r['ssm']['batch']:,} vs "
                   f"{r['tf']['batch']:,}) | {A.fmt_ratio(r['decode_ratio'])} | **{verdict}** | {cross[0]} | {cross[1]} |")
    out += [_memory_table(m, models), _baselines(m)]
    return "\n".join(x for x in out if x is not None).rstrip() + "\n"


def _memory_table(m: pd.DataFrame, models: list[str]) -> str:
    """Cache and peak memory at batch 1, and each model's largest batch at the paper setting."""
    lines = [f"| model | cache @512 | cache @{LONG:,} | peak @{LONG:,} | paper setting: batch, peak, prefill, TPOT | "
             "batch-sweep TPOT, batch 1 -> largest |", "|---|---|---|---|---|---|"]
    for model in models:
        b = m[(m["model"] == model) & (m["metric"] == "point") & (m["phase"] == "batch") & (m["status"] == "ok")]
        b = b.sort_values("batch")
        c512, clong, plong = (_at(m, model, y, L) for y, L in
                              (("cache_bytes", 512), ("cache_bytes", LONG), ("peak_mem_bytes", LONG)))
        mib = lambda v: _f(None if v is None else v / 2**20, ",.2f", " MiB")  # noqa: E731
        top = b.iloc[-1] if not b.empty else None
        paper = "—" if top is None else (f"{int(top['batch']):,}, {top['peak_mem_bytes'] / 2**30:.2f} GiB, "
                                         f"{top['prefill_ms'] / 1e3:.2f} s, {top['tpot_ms']:.2f} ms")
        sweep = "—" if top is None else (f"{b['tpot_ms'].iloc[0]:.2f} ms (batch {int(b['batch'].iloc[0])}) -> "
                                         f"{top['tpot_ms']:.2f} ms (batch {int(top['batch']):,})")
        lines.append(f"| {model} | {mib(c512)} | {mib(clong)} | {_f(None if plong is None else plong / 2**30, '.2f', ' GiB')} "
                     f"| {paper} | {sweep} |")
    return "\n".join(["", *lines])


def _baselines(m: pd.DataFrame) -> str | None:
    """The rows that are never a model's own number: plain generate() and the transformer's eager loop."""
    b = m[(m["metric"] == "point") & (m["phase"].isin(["hf-generate", "eager"])) & (m["status"] == "ok")]
    if b.empty:
        return None
    lines = ["", "Baselines (batch 1; not a model's own path):", "",
             "| model | path | prompt | new tokens | decode tok/s | TPOT |", "|---|---|---|---|---|---|"]
    for _, r in b.sort_values(["model", "path", "prompt_tokens", "new_tokens"], kind="stable").iterrows():
        lines.append(f"| {r['model']} | `{r['path']}` | {int(r['prompt_tokens']):,} | {int(r['new_tokens'])} | "
                     f"{_f(r['decode_tok_s'], ',.0f')} | {_f(r['tpot_ms'], '.2f', ' ms')} |")
    return "\n".join(lines)


def _config(text) -> str:
    """A LaunchConfig repr without its zero / False fields."""
    if not isinstance(text, str):
        return ""
    fields = re.findall(r"(\w+)=([^,)]+)", text)
    return ", ".join(f"{k}={v}" for k, v in fields if v not in ("0", "False"))


def kernel_markdown(path: Path) -> str:
    """A kernel-bench run: every kernel's time against the copy bandwidth and its baselines, and the sweep."""
    runs, m = load(path, "kernel_bench")
    if runs.empty:
        return f"**`{path.name}`**: no kernel-bench run."
    run = runs.iloc[-1]
    copy = m[m["metric"] == "copy_gbps"]["value"]
    out = [_run_line(path.name, run) + f" Device copy bandwidth {_f(copy.max() if len(copy) else None, ',.0f', ' GB/s')}.",
           "", "| kernel | shape | time | % of copy bandwidth | vs reference | vs HF | vs mamba-ssm | vs previous scan |",
           "|---|---|---|---|---|---|---|---|"]
    k = m[m["metric"] == "kernel_ms"].sort_values(["model", "shape"])
    col = lambda r, c: r[c] if c in r.index else None  # noqa: E731
    notes: dict[str, list[str]] = {}
    for _, r in k.iterrows():
        sp = [_f(col(r, c), ",.2f", "x") for c in ("speedup_vs_reference", "speedup_vs_hf", "speedup_vs_mamba_ssm",
                                                     "speedup_vs_previous")]
        out.append(f"| {r['model']} | {r['shape']} | {_ms(r['value'])} | {_f(col(r, 'pct_of_copy'), '.1f', '%')} | "
                   + " | ".join(sp) + " |")
        if isinstance(col(r, "hf_note"), str):
            notes.setdefault(r["hf_note"], []).append(f"{r['model']} {r['shape']}")
    peers = m[m["metric"] == "peer_ms"].sort_values(["model", "shape"]) if "metric" in m.columns else m.iloc[:0]
    if not peers.empty:  # another project's kernel timed on the same inputs: its own rows, never our number
        out += ["", "Peer: mamba-ssm's CUDA scan forward, built on the same machine, same inputs (its own layout):",
                "", "| kernel | shape | ours | mamba-ssm-cuda | ours vs peer (>1: ours faster) | max rel. difference |",
                "|---|---|---|---|---|---|"]
        for _, r in peers.iterrows():
            mine = k[(k["model"] == r["model"]) & (k["shape"] == r["shape"])]
            err = mine["mamba_ssm_cuda_max_rel_err"].iloc[0] if len(mine) and "mamba_ssm_cuda_max_rel_err" in mine else None
            out.append(f"| {r['model']} | {r['shape']} | {_ms(col(r, 'ours_ms'))} | {_ms(r['value'])} | "
                       f"{_f(r['value'] / col(r, 'ours_ms') if _ok(col(r, 'ours_ms')) else None, ',.2f', 'x')} | "
                       f"{_f(err, '.1e')} |")
    sweep = m[m["metric"] == "sweep_ms"]
    if not sweep.empty:
        out += ["", "Launch-config sweep (the fastest configuration tried, against the default above):", "",
                "| kernel | shape | default | fastest in the sweep | its configuration |", "|---|---|---|---|---|"]
        for (model, shape), g in sweep.groupby(["model", "shape"], sort=True):
            best = g.sort_values("value").iloc[0]
            default = k[(k["model"] == model) & (k["shape"] == shape)]["value"]
            out.append(f"| {model} | {shape} | {_ms(default.iloc[0] if len(default) else None)} | "
                       f"{_ms(best['value'])} | {_config(best['config'])} |")
    out += [""] + [f"- {', '.join(where)}: {note}" for note, where in notes.items()] if notes else []
    return "\n".join(out) + "\n"


def ssm_e2e_markdown(path: Path) -> str:
    """An ssm-bench run: prefill time (peak memory) against length and decode tokens/s against context."""
    runs, m = load(path, "ssm_e2e")
    if runs.empty:
        return f"**`{path.name}`**: no ssm-bench run."
    out = [_run_line(path.name, runs.iloc[-1]) + " Batch 1; GB are 10^9 bytes (`torch.cuda.max_memory_allocated`)."]
    pre = m[m["prefill_ms"].notna()]
    lengths = sorted(pre["prompt_tokens"].astype(int).unique())
    out += ["", "| prefill (peak memory) | " + " | ".join(f"{L:,}" for L in lengths) + " |",
            "|---|" + "---|" * len(lengths)]
    for (model, p), g in pre.groupby(["model", "path"], sort=True):
        cells = {int(r["prompt_tokens"]): f"{_ms(r['prefill_ms'])} ({r['peak_mem_bytes'] / 1e9:.2f} GB)"
                 for _, r in g.iterrows()}
        out.append(f"| {model}, `{p}` | " + " | ".join(cells.get(L, "") for L in lengths) + " |")
    dec = m[m["decode_tok_s"].notna()]
    ctx = sorted(dec["prompt_tokens"].astype(int).unique())
    out += ["", "| decode tok/s, context | " + " | ".join(f"{c:,}" for c in ctx) + " |", "|---|" + "---|" * len(ctx)]
    for (model, p), g in dec.groupby(["model", "path"], sort=True):
        cells = {int(r["prompt_tokens"]): f"{r['decode_tok_s']:,.0f}" for _, r in g.iterrows()}
        out.append(f"| {model}, `{p}` | " + " | ".join(cells.get(c, "") for c in ctx) + " |")
    return "\n".join(out) + "\n"


def _aot_cell(r: pd.Series) -> str:
    if not r.get("ok", True):
        return "compile error"
    kib = f"{(r.get('lds_bytes') if r.get('backend') == 'hip' else r.get('shared_bytes')) or 0:.0f} B"
    if r.get("backend") == "hip":
        return (f"{r['vgpr']:.0f} VGPR, {r['sgpr']:.0f} SGPR ({r.get('sgpr_spill') or 0:.0f} spilled to VGPR), "
                f"{r['spills']:.0f} spills, LDS {kib}, occupancy {r.get('occupancy') or 0:.0f}")
    loop = r.get("loop_instrs")
    loop = f", {loop:.0f} loop instructions" if loop is not None and pd.notna(loop) and loop > 0 else ""
    return f"{r['registers']:.0f} registers, {r['spills']:.0f} spills, shared {kib}{loop}"


def aot_markdown(path: Path) -> str:
    """Every kernel-aot run in the file, newest first: one row per kernel variant, one column per target."""
    runs, m = load(path, "kernel_aot")
    out = []
    for _, run in runs.iloc[::-1].iterrows():
        g = m[m["run_id"] == run["run_id"]]
        targets = sorted(g["target"].unique())
        summ = run["summary"] or {}
        out += [_run_line(path.name, run) + f" {summ.get('kernels', len(g))} compiles, "
                f"{summ.get('failed_or_spilled', '?')} failed or spilled to memory.", "",
                "| kernel | variant | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
        for (op, variant), k in g.groupby(["op", "variant"], sort=True):
            cells = {r["target"]: _aot_cell(r) for _, r in k.iterrows()}
            out.append(f"| {op} | {variant} | " + " | ".join(cells.get(t, "") for t in targets) + " |")
        out.append("")
    return "\n".join(out)
