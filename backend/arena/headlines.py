"""The start page's headline results, computed from the committed result files (never typed in).

Each headline is a sentence built by the same code the result pages use (backend.bench.analysis for the
benchmark, the evaluation records for the bundled models) plus the page that shows it. Result files are
read directly (JSONL, pandas), not through the store, so the start page does not wait for the first
start's import of every committed result into DuckDB.

    headlines(results_dir, eval_rows) -> [Headline(title, text, page, source)]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backend.bench import analysis as A
from store import open_results

# (file, SSM, transformer, what the headline is about): a real pair on a GPU and the toy pair on this kind of CPU
BENCH = [("bench_h200.jsonl", "mamba-1.4b", "pythia-1.4b", "Published checkpoints on a GPU"),
         ("bench_cpu_toy.jsonl", "toy-mamba", "toy-transformer", "The bundled models on a CPU")]


@dataclass(frozen=True)
class Headline:
    title: str
    text: str
    page: str  # pages/*.py that shows it
    source: str  # the results file


def bench_frame(path: Path) -> tuple[pd.DataFrame, str]:
    """(measurement rows of kind "bench" with `extra` expanded, the device name) of one results file."""
    runs, rows = {}, []
    with open_results(path) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "run":
                runs[rec.get("run_id")] = rec
            elif rec.get("type") == "measurement" and isinstance(rec.get("data"), dict):
                run = runs.get(rec.get("run_id")) or {}
                if run.get("kind") != "bench":
                    continue
                d = dict(rec["data"])
                extra = d.pop("extra", None) or {}
                d.update({k: v for k, v in extra.items() if k not in d})
                rows.append({**d, "run_id": rec.get("run_id")})
    device = next((r.get("meta", {}).get("device_name") for r in runs.values() if r.get("kind") == "bench"), "")
    return pd.DataFrame(rows), device or ""


def _bench(results_dir: Path) -> list[Headline]:
    out = []
    for name, ssm, tf, title in BENCH:
        path = Path(results_dir) / name
        if not path.is_file():
            continue
        m, device = bench_frame(path)
        if m.empty or ssm not in set(m.get("model", [])):
            continue
        cross = A.crossover(A.curve(m, ssm, "tpot_ms"), A.curve(m, tf, "tpot_ms"), "tpot_ms")
        text = A.crossover_sentence(cross, ssm, tf)
        ratio = A.paper_ratio(m, ssm, tf)
        if ratio.get("ratio") is not None:
            text += " " + A.claim_sentence(ratio, device)
        out.append(Headline(f"{title} ({device})" if device else title, text, "pages/performance.py", name))
    return out


def _pct(rows: pd.DataFrame, task: str, setting: str = "") -> str:
    r = rows[(rows["task"] == task) & (rows["setting"] == setting)]
    return ", ".join(f"{m} {v:.0%} [{lo:.0%}, {hi:.0%}]" for m, v, lo, hi in
                     r[["model", "value", "ci_low", "ci_high"]].itertuples(index=False))


def _evaluation(rows: pd.DataFrame) -> list[Headline]:
    if rows is None or rows.empty:
        return []
    src = ", ".join(sorted(set(rows["source"])))
    n = rows[rows["task"] == "qa_open"]["n"].max()
    out = [Headline("What the bundled models can do (held-out entities)",
                    f"Open-book QA, answer copied from a passage they never saw (n = {n}): "
                    f"{_pct(rows, 'qa_open')}. Arithmetic word problems, 2 steps, step by step: "
                    f"{_pct(rows, 'arithmetic', 'cot, 2 steps')}; answering directly: "
                    f"{_pct(rows, 'arithmetic', 'direct, 2 steps')}.", "pages/models.py", src)]
    beyond = rows[(rows["task"] == "passkey") & (rows["setting"] == "2048 tokens")]
    if not beyond.empty:
        out.append(Headline("Beyond the 1,024-token training context",
                            f"Pass key at 2,048 tokens (n = {beyond['n'].max()}): {_pct(rows, 'passkey', '2048 tokens')}; "
                            f"at 1,024: {_pct(rows, 'passkey', '1024 tokens')}.", "pages/long_context.py", src))
    return out


def headlines(results_dir: Path, eval_rows: pd.DataFrame | None = None) -> list[Headline]:
    return _evaluation(eval_rows) + _bench(Path(results_dir))
