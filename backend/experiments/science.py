"""The science summary of docs/results.md: for the newest version of each task, which differences from the
transformer hold, which cells sit at a ceiling or at a floor (computed from results/, never typed in).

    headline_runs(results_dir)  -> [(path, run dict)] one per (experiment, task): its newest task version, and
                                   among those the run with the most scored predictions (the GPU full profile when
                                   there is one)
    markdown(results_dir)       -> the "What the experiments show" section

A difference holds when its 95% interval (paired t over items) excludes 0 and McNemar's exact test, Holm-corrected
across the run's cells, gives p < 0.05 (`stats.paired_table`). A cell is at the ceiling when every model scores
0.95 or more, below the floor when every model's 95% Wilson interval lies under the best floor of the cell
(chance, majority, a random listed value or needle; `stats.baseline_table`), and at the floor when no model's
interval lies above it, or every model scores 0.05 or less.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backend.experiments import stats
from backend.experiments.summary import load, table_keys
from backend.experiments.views import accuracy_table
from store import result_files

TITLES = {"experiment-fewshot": "Few-shot", "experiment-long-context": "Long context",
          "experiment-cot": "Chain of thought", "experiment-rag": "RAG"}
CEILING, FLOOR_EPS = 0.95, 0.05


def _versions(preds: pd.DataFrame) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in preds.get("params", []):
        if isinstance(p, dict) and p.get("task"):
            out[p["task"]] = max(out.get(p["task"], 1), int(p.get("task_version") or 1))
    return out


def version_label(preds: pd.DataFrame) -> str:
    """"fewshot-arbitrary v2" (tasks without a recorded version: v1, the evaluations before issue 13)."""
    v = _versions(preds)
    return ", ".join(f"{t} v{n}" for t, n in sorted(v.items())) or "no scored rows"


def headline_runs(results_dir: Path) -> list[tuple[Path, dict]]:
    """The run each (experiment, task) is judged by: its newest task version, then the most scored predictions."""
    best: dict[tuple, tuple] = {}
    files = result_files(results_dir, "exp_*")
    for path in files:
        for d in load(path):
            run, preds = d["run"] or {}, d["predictions"]
            if preds.empty or run.get("kind") not in TITLES:
                continue
            cfg = run.get("config") or {}
            task = cfg.get("task") or "toy-rag"
            versions = _versions(preds)
            scored = int(preds["score"].notna().sum())
            rank = (max(versions.values(), default=1), scored, run.get("created_at") or "")
            key = (run["kind"], task)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, path, d)
    order = list(TITLES)
    return [(p, d) for (kind, _), (_, p, d) in sorted(best.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1]))]


def _cell(r: pd.Series, by: list[str]) -> str:
    return ", ".join(f"{b}={r[b]:g}" if isinstance(r[b], (int, float)) else f"{b}={r[b]}" for b in by)


def _floors(preds: pd.DataFrame, by: list[str], filt: str) -> pd.DataFrame:
    base = stats.baseline_table(preds, by, filt)
    if base.empty:
        return pd.DataFrame(columns=[*by, "floor"])
    return base.groupby(by, as_index=False)["value"].max().rename(columns={"value": "floor"})


def run_findings(preds: pd.DataFrame, kind: str, families: dict[str, str]) -> list[str]:
    """Bullets for one run: differences that hold, ceiling cells, floor cells (each with the numbers behind it)."""
    by, filt = table_keys(kind, preds)
    if kind == "experiment-cot" and "mode" not in by:
        by = [*by, "mode"]
    acc = accuracy_table(preds, by, filt)
    if acc.empty:
        return ["- no scored rows"]
    refs = stats.references(list(dict.fromkeys(acc["model"])), families)
    paired = stats.paired_table(preds, by, filt, refs)
    held = paired[paired["holds"]] if not paired.empty else paired
    out = []
    if paired.empty:
        out.append("- No paired comparison: the run has no reference model (a transformer) beside "
                   + ", ".join(dict.fromkeys(acc["model"])) + ".")
    elif held.empty:
        ref = " / ".join(sorted(set(paired["reference"])))
        out.append(f"- No difference from {ref} holds in any of the {len(paired)} (model, cell) comparisons.")
    else:
        for model, g in held.groupby("model", sort=True):
            cells = "; ".join(f"{_cell(r, by)}: {r['diff']:+.2f} [{r['diff_low']:+.2f}, {r['diff_high']:+.2f}], "
                              f"p = {r['p_holm']:.2g}" for _, r in g.iterrows())
            total = int((paired["model"] == model).sum())
            out.append(f"- {model} minus {g['reference'].iloc[0]} holds in {len(g)} of {total} cells: {cells}.")
    floors = _floors(preds, by, filt)
    cells = acc.groupby(by, sort=True)
    ceiling, floor, below = [], [], []
    for key, g in cells:
        key = key if isinstance(key, tuple) else (key,)
        name = _cell(pd.Series(dict(zip(by, key, strict=True))), by)
        if (g["accuracy"] >= CEILING).all():
            ceiling.append(name)
            continue
        f = floors
        for b, v in zip(by, key, strict=True):
            f = f[f[b] == v]
        best = float(f["floor"].iloc[0]) if len(f) else 0.0
        if best > 0 and (g["ci_high"] < best).all():
            below.append(f"{name} (floor {best:.2f})")
        elif (g["ci_low"] <= best).all() or (g["accuracy"] <= FLOOR_EPS).all():
            floor.append(f"{name} (floor {best:.2f})")
    ns = sorted(set(acc["n"].astype(int)))
    out.append(f"- n = {'/'.join(map(str, ns))} per cell ({filt} filter). At the ceiling (every model >= {CEILING}): "
               + ("; ".join(ceiling) if ceiling else "none") + ".")
    out.append("- At the floor (no model's interval above its floor): " + ("; ".join(floor) if floor else "none") + ".")
    if below:
        out.append("- Below the floor (every model's interval under it: a systematic answer, e.g. training's own "
                   "mapping, not chance): " + "; ".join(below) + ".")
    return out


def markdown(results_dir: Path) -> str:
    """The "What the experiments show" section: one block per headline run."""
    out = ["### What the experiments show", "", INTRO, ""]
    for path, d in headline_runs(results_dir):
        run, end = d["run"] or {}, d["end"] or {}
        meta, cfg = run.get("meta") or {}, run.get("config") or {}
        fam = stats.run_families(meta, end.get("summary"))
        out += [f"**{TITLES[run['kind']]}, {version_label(d['predictions'])}** (`{path.name}`, run "
                f"{run.get('run_id', '')[:8]}, {meta.get('device_name')}, {end.get('status')}, task "
                f"{cfg.get('task') or Path(str(cfg.get('data') or '')).name}):", ""]
        out += run_findings(d["predictions"], run["kind"], fam) + [""]
    return "\n".join(out)


INTRO = """Computed from the files below for the newest version of each task (the run with the most scored items).
"Holds" means the 95% interval of the paired difference from the transformer on the same items excludes 0 and
McNemar's exact test, Holm-corrected across the run's cells, gives p < 0.05. A cell at the ceiling or the floor
cannot rank the models, whatever its differences: read those as properties of the task, not of the architectures.
The bundled models are one training seed each (the experiment seed only resamples items), so a difference that
holds is a difference between these three checkpoints."""
