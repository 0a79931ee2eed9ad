"""The Training page's tables and figures (issue 14): probe accuracy during training (emergence), the seeds at
the final probe, and the size ladder.

Input: the store's rows of run kind "train" (`measurements(kinds=["train"], expand_extra=True)` and
`runs(kind="train")`), or the same read straight from RecordWriter JSONL (each measurement's `data` with its
`run_id`; each run line's run_id / created_at / config). Metrics used: "final_loss" and "probe:<task>" (value =
accuracy, with correct, n, chance, step, tokens). Rows are keyed on `model`, never on `family` (toy-transformer-deep
shares the transformer family). No Streamlit here, so tests build every figure directly. The figures live here
rather than in charts.py (which is full) and share its palette; intervals are the experiments' own 95% Wilson
interval (backend.experiments.metrics, statsmodels imported on first call).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.experiments.metrics import wilson_interval
from pages.components.charts import PALETTE

TASKS = ("fewshot-new-k0", "fewshot-new-k8", "mqar-8", "mqar-32", "mqar-64", "passkey-2k-4keys", "multi-qa-4")
PRESETS = ("small", "medium", "large")  # the size ladder, smallest first
PROBE = "probe:"
FINAL_LOSS = "final loss"
RUN_DASHES = ("solid", "dot", "dashdot", "longdashdot", "longdash")  # "dash" is the chance line's
SEED_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "pentagon", "star")
CHANCE_LINE = {"color": "grey", "dash": "dash", "width": 1.5}
RUN_COLUMNS = ["run_id", "created_at", "seed", "preset", "mixture", "long_phase", "recipe", "short", "label"]
PROBE_COLUMNS = ["run_id", "model", "family", "n_params", "preset", "seed", "task", "step", "tokens", "value",
                 "correct", "n", "chance", "ci_low", "ci_high", "recipe", "short", "label"]


# ------------------------------------------------------------------------ runs
def long_phase(config: dict) -> str:
    """The long phase of a run's recipe in words, from its config. Runs recorded before `long_every` existed
    (results/train14_h100_s0_longall.jsonl) trained every step of the long phase long: the ablation."""
    seq, frac = config.get("long_seq_len"), config.get("long_frac")
    if not seq or not frac:
        return "no long phase"
    where = f"last {float(frac):.0%} of steps at {int(seq):,} tokens"
    every = config.get("long_every")
    if every is None:
        return f"long phase: every step long ({where}; ablation)"
    if int(every) <= 1:
        return f"long phase: every step long ({where})"
    return f"long phase: 1 step in {int(every)} long ({where})"


def _short_phase(phase: str) -> str:
    if phase == "no long phase":
        return phase
    if "every step long" in phase:
        return "every step long" + (" (ablation)" if "ablation" in phase else "")
    return phase.split(" (", 1)[0].replace("long phase: ", "")


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per training run: seed, preset, mixture ("none" before mixtures existed), long_phase, recipe
    (mixture + long phase: seeds of one recipe and preset are comparable), short (for legends) and label
    (for filters), oldest first."""
    rows = []
    for r in (runs.to_dict("records") if runs is not None and not runs.empty else []):
        cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
        created = pd.to_datetime(r.get("created_at"), utc=True, errors="coerce")
        seed, preset, mixture = cfg.get("seed"), cfg.get("preset") or "?", cfg.get("mixture") or "none"
        phase = long_phase(cfg)
        when = created.strftime("%Y-%m-%d %H:%M") if pd.notna(created) else "?"
        rows.append({"run_id": r["run_id"], "created_at": created, "seed": seed, "preset": preset,
                     "mixture": mixture, "long_phase": phase, "recipe": f"mixture {mixture} · {phase}",
                     "short": f"seed {seed} · {_short_phase(phase)}",
                     "label": f"seed {seed} · {preset} · mixture {mixture} · {phase} · {when} · "
                              f"{str(r['run_id'])[:8]}"})
    return pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values("created_at", kind="stable", ignore_index=True)


def _with_runs(df: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """Join each row's run (recipe, short, label); rows of an unknown run are labelled by their seed."""
    keep = ["run_id", "seed", "recipe", "short", "label"]
    info = runs[keep] if runs is not None and not runs.empty else pd.DataFrame(columns=keep)
    out = df.merge(info.rename(columns={"seed": "run_seed"}), on="run_id", how="left")
    out["seed"] = _col(out, "seed").where(_col(out, "seed").notna(), out["run_seed"])  # rows before issue 14: none
    seed = out["seed"].map(lambda s: "?" if s is None or s != s else int(s))
    out["recipe"] = out["recipe"].fillna("unknown run")
    out["short"] = out["short"].fillna("seed " + seed.astype(str))
    out["label"] = out["label"].fillna(out["short"] + " · " + out["run_id"].astype(str).str[:8])
    return out


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


# ------------------------------------------------------------------------ rows
def probe_frame(meas: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Probe rows (metric "probe:<task>") with their 95% Wilson interval from correct / n, and their run."""
    if meas is None or meas.empty or "metric" not in meas.columns:
        return pd.DataFrame(columns=PROBE_COLUMNS)
    m = meas[meas["metric"].astype(str).str.startswith(PROBE)].copy()
    if m.empty:
        return pd.DataFrame(columns=PROBE_COLUMNS)
    m["task"] = _col(m, "task").fillna(m["metric"].str[len(PROBE):])
    m["n"] = pd.to_numeric(_col(m, "n"), errors="coerce")
    m["value"] = pd.to_numeric(m["value"], errors="coerce")
    correct = pd.to_numeric(_col(m, "correct"), errors="coerce")
    m["correct"] = correct.fillna((m["value"] * m["n"]).round())
    m = m[m["n"].notna() & m["correct"].notna()]
    m["n"], m["correct"] = m["n"].astype(int), m["correct"].astype(int)
    bounds = [wilson_interval(k, n) for k, n in zip(m["correct"], m["n"], strict=True)]
    m["ci_low"] = [b[0] for b in bounds]
    m["ci_high"] = [b[1] for b in bounds]
    for c in ("step", "tokens", "chance", "n_params"):
        m[c] = pd.to_numeric(_col(m, c), errors="coerce")
    for c in ("family", "preset", "seed"):
        m[c] = _col(m, c)
    return _with_runs(m, runs)[PROBE_COLUMNS].reset_index(drop=True)


def loss_frame(meas: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The final training loss of each model in each run (metric "final_loss")."""
    cols = ["run_id", "model", "family", "n_params", "preset", "seed", "steps", "tokens_seen", "value"]
    if meas is None or meas.empty or "metric" not in meas.columns:
        return pd.DataFrame(columns=cols + ["recipe", "short", "label"])
    m = meas[meas["metric"] == "final_loss"].copy()
    for c in cols:
        m[c] = _col(m, c)
    m["n_params"] = pd.to_numeric(m["n_params"], errors="coerce")
    return _with_runs(m[cols], runs).reset_index(drop=True)


def final_points(probes: pd.DataFrame) -> pd.DataFrame:
    """Each run's last probe of each model and task (the final step of training)."""
    if probes.empty:
        return probes
    last = probes.groupby(["run_id", "model", "task"])["step"].transform("max")
    return probes[probes["step"] == last].reset_index(drop=True)


def above_chance(points: pd.DataFrame) -> pd.Series:
    """Per row: the lower Wilson bound is above chance."""
    return points["ci_low"] > points["chance"]


def holds_in_every_seed(points: pd.DataFrame) -> bool:
    """The claim "above chance" holds in every seed: each seed's lower 95% Wilson bound is above chance."""
    return bool(len(points)) and bool(above_chance(points).all())


def _task_order(tasks) -> list[str]:
    present = set(tasks)
    return [t for t in TASKS if t in present] + sorted(present - set(TASKS))


def seeds_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per recipe, preset, model and task: the final value of each seed, their mean and range, and whether the
    claim "above chance" holds in every seed."""
    cols = ["recipe", "preset", "task", "model", "seeds", "values", "mean", "low", "high", "chance",
            "above chance", "every seed"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (recipe, preset, task, model), g in points.groupby(["recipe", "preset", "task", "model"], sort=False):
        g = g.sort_values("seed")
        above = int(above_chance(g).sum())
        rows.append({"recipe": recipe, "preset": preset, "task": task, "model": model, "seeds": len(g),
                     "values": ", ".join(f"{v:.3f}" for v in g["value"]), "mean": g["value"].mean(),
                     "low": g["value"].min(), "high": g["value"].max(), "chance": g["chance"].iloc[0],
                     "above chance": f"{above} of {len(g)} seed{'s' if len(g) != 1 else ''}",
                     "every seed": holds_in_every_seed(g)})
    out = pd.DataFrame(rows, columns=cols)
    order = {t: i for i, t in enumerate(_task_order(out["task"]))}
    return out.sort_values(["recipe", "preset", "task", "model"], key=lambda s: s.map(order) if s.name == "task"
                           else s, ignore_index=True)


# ------------------------------------------------------------------------ figures
def model_colors(models) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(models)))}


def _seed_symbol(seed) -> str:
    try:
        return SEED_SYMBOLS[int(seed) % len(SEED_SYMBOLS)]
    except (TypeError, ValueError):
        return "circle"


def _grid(tasks: list[str], cols: int, height_per_row: int = 260):
    cols = max(1, min(cols, len(tasks)))
    rows = math.ceil(len(tasks) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=tasks, horizontal_spacing=0.05,
                        vertical_spacing=0.28 / rows if rows > 1 else 0.1)
    fig.update_layout(height=height_per_row * rows + 140, legend={"orientation": "h", "y": -0.12,
                                                                  "yanchor": "top"})
    for i in range(len(tasks), rows * cols):  # the grid's empty cells draw no axes
        fig.update_xaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
    return fig, [(i // cols + 1, i % cols + 1) for i in range(len(tasks))]


def _chance(fig, x0, x1, chance, row, col, first: bool) -> None:
    fig.add_trace(go.Scatter(x=[x0, x1], y=[chance, chance], mode="lines", line=CHANCE_LINE, name="chance",
                             legendgroup="chance", showlegend=first,
                             hovertemplate=f"chance {chance:.3f}<extra></extra>"), row=row, col=col)


def emergence_figure(probes: pd.DataFrame, cols: int = 4) -> go.Figure:
    """One panel per probe task: accuracy against tokens seen with 95% Wilson error bars, one colour per model,
    one line style (and marker symbol) per run, a dashed chance line per panel."""
    tasks = _task_order(probes["task"])
    fig, cells = _grid(tasks, cols)
    colors = model_colors(probes["model"])
    run_order = list(dict.fromkeys(probes.sort_values(["seed", "recipe"], kind="stable")["run_id"]))
    shown: set[str] = set()
    for task, (r, c) in zip(tasks, cells, strict=True):
        t = probes[probes["task"] == task]
        for (model, run_id), g in t.groupby(["model", "run_id"], sort=True):
            g = g.sort_values("tokens")
            name = f"{model} · {g['short'].iloc[0]}"
            fig.add_trace(go.Scatter(
                x=g["tokens"], y=g["value"], mode="lines+markers", name=name, legendgroup=name,
                showlegend=name not in shown,
                line={"color": colors[model], "dash": RUN_DASHES[run_order.index(run_id) % len(RUN_DASHES)],
                      "width": 1.5},
                marker={"symbol": _seed_symbol(g["seed"].iloc[0]), "size": 6},
                error_y={"type": "data", "symmetric": False, "array": g["ci_high"] - g["value"],
                         "arrayminus": g["value"] - g["ci_low"], "thickness": 1, "width": 3},
                customdata=g[["correct", "n", "ci_low", "ci_high", "step"]].to_numpy(),
                hovertemplate="%{y:.3f} (%{customdata[0]}/%{customdata[1]}, 95% CI %{customdata[2]:.3f}–"
                              "%{customdata[3]:.3f}) at step %{customdata[4]}, %{x:,} tokens<extra>" + name +
                              "</extra>"), row=r, col=c)
            shown.add(name)
        _chance(fig, t["tokens"].min(), t["tokens"].max(), float(t["chance"].max()), r, c, "chance" not in shown)
        shown.add("chance")
        fig.update_xaxes(title_text="tokens seen", row=r, col=c)
    fig.update_yaxes(range=[-0.03, 1.03])
    fig.update_yaxes(title_text="accuracy", col=1)
    fig.update_layout(title="Probe accuracy during training (95% Wilson intervals; dashed: chance)")
    return fig


def seeds_figure(points: pd.DataFrame, title: str, cols: int = 4) -> go.Figure:
    """Final probe value per model and task (one recipe and preset): each seed a point (filled where its lower
    Wilson bound is above chance, open where not), the mean as a bar with the range over seeds, chance dashed."""
    tasks = _task_order(points["task"])
    models = sorted(points["model"].unique())
    colors = model_colors(models)
    seeds = sorted(points["seed"].dropna().unique())
    fig, cells = _grid(tasks, cols, height_per_row=300)
    shown: set[str] = set()
    for task, (r, c) in zip(tasks, cells, strict=True):
        t = points[points["task"] == task]
        for i, model in enumerate(models):
            g = t[t["model"] == model].sort_values("seed")
            if g.empty:
                continue
            for _, p in g.iterrows():
                name = f"seed {p['seed']}"
                x = i + (seeds.index(p["seed"]) - (len(seeds) - 1) / 2) * 0.12 if p["seed"] in seeds else i
                filled = bool(p["ci_low"] > p["chance"])
                fig.add_trace(go.Scatter(
                    x=[x], y=[p["value"]], mode="markers", name=name, legendgroup=name,
                    showlegend=name not in shown,
                    marker={"symbol": _seed_symbol(p["seed"]) + ("" if filled else "-open"), "size": 9,
                            "color": colors[model], "line": {"color": colors[model], "width": 1.5}},
                    hovertemplate=f"{model}, {name}: {p['value']:.3f} ({p['correct']}/{p['n']}, 95% CI "
                                  f"{p['ci_low']:.3f}–{p['ci_high']:.3f})<extra></extra>"), row=r, col=c)
                shown.add(name)
            mean, lo, hi = g["value"].mean(), g["value"].min(), g["value"].max()
            fig.add_trace(go.Scatter(
                x=[i], y=[mean], mode="markers", name="mean (bar: range over seeds)", legendgroup="mean",
                showlegend="mean" not in shown,
                marker={"symbol": "line-ew-open", "size": 22, "color": "black", "line": {"width": 2.5}},
                error_y={"type": "data", "symmetric": False, "array": [hi - mean], "arrayminus": [mean - lo],
                         "color": "black", "thickness": 1.5, "width": 0},
                hovertemplate=f"{model}: mean {mean:.3f}, range {lo:.3f}–{hi:.3f} over {len(g)} "
                              "seed(s)<extra></extra>"), row=r, col=c)
            shown.add("mean")
        if not t.empty:
            _chance(fig, -0.5, len(models) - 0.5, float(t["chance"].max()), r, c, "chance" not in shown)
            shown.add("chance")
        fig.update_xaxes(tickvals=list(range(len(models))), ticktext=models, range=[-0.6, len(models) - 0.4],
                         tickangle=-35, row=r, col=c)
    fig.update_yaxes(range=[-0.03, 1.03])
    fig.update_yaxes(title_text="accuracy at the final probe", col=1)
    fig.update_layout(title=title)
    return fig


def scaling_points(points: pd.DataFrame, losses: pd.DataFrame) -> pd.DataFrame:
    """Long rows (recipe, model, family, preset, n_params, seed, measure, value, chance) for the size ladder:
    the final loss and each task's final probe value of every run."""
    cols = ["recipe", "model", "family", "preset", "n_params", "seed", "run_id", "measure", "value", "chance"]
    parts = []
    if losses is not None and not losses.empty:
        parts.append(losses.assign(measure=FINAL_LOSS, chance=float("nan"))[cols])
    if points is not None and not points.empty:
        parts.append(points.assign(measure=points["task"])[cols])
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def ladder_note(ladder: pd.DataFrame) -> str | None:
    """A sentence when presets of the size ladder are missing (None when every preset is trained)."""
    have = [p for p in PRESETS if p in set(ladder["preset"].dropna())] if not ladder.empty else []
    missing = [p for p in PRESETS if p not in have]
    if not missing:
        return None
    if not have:
        return "No preset of the size ladder (" + ", ".join(PRESETS) + ") is trained yet."
    return (f"Only the {' and '.join(have)} preset{'s are' if len(have) > 1 else ' is'} trained: the size "
            f"ladder ({', '.join(missing)}) is not trained yet, so each model has "
            f"{'points at ' + str(len(have)) + ' sizes' if len(have) > 1 else 'one size'} here.")


def scaling_figure(ladder: pd.DataFrame, measure: str, title: str = "") -> go.Figure:
    """`measure` ("final loss" or a probe task) against parameters (log axis): one colour per model, each
    seed a point, a line through each preset's mean; chance dashed for probe tasks."""
    d = ladder[ladder["measure"] == measure]
    colors = model_colors(d["model"])
    fig = go.Figure()
    for model, g in d.groupby("model", sort=True):
        family = g["family"].dropna().iloc[0] if g["family"].notna().any() else "?"
        name = f"{model} ({family})"
        means = g.groupby(["preset", "n_params"], as_index=False)["value"].mean().sort_values("n_params")
        fig.add_trace(go.Scatter(x=means["n_params"], y=means["value"], mode="lines+markers", name=name,
                                 legendgroup=name, line={"color": colors[model]},
                                 marker={"symbol": "line-ew-open", "size": 16, "line": {"width": 2}},
                                 customdata=means[["preset"]].to_numpy(),
                                 hovertemplate="%{customdata[0]}: mean %{y:.3f}, %{x:,} parameters<extra>" + name +
                                               "</extra>"))
        for seed, gs in g.groupby("seed", sort=True):
            fig.add_trace(go.Scatter(x=gs["n_params"], y=gs["value"], mode="markers", name=f"{name} · seed {seed}",
                                     legendgroup=name, showlegend=False,
                                     marker={"symbol": _seed_symbol(seed), "size": 8, "color": colors[model]},
                                     hovertemplate=f"seed {seed}: " + "%{y:.3f}<extra>" + name + "</extra>"))
    if measure != FINAL_LOSS and not d.empty and d["chance"].notna().any():
        lo, hi = d["n_params"].min(), d["n_params"].max()
        fig.add_trace(go.Scatter(x=[lo / 1.3, hi * 1.3], y=[d["chance"].max()] * 2, mode="lines", line=CHANCE_LINE,
                                 name="chance", hovertemplate="chance %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="parameters (log scale)")
    fig.update_yaxes(title_text="final training loss" if measure == FINAL_LOSS else "accuracy at the final probe")
    if measure != FINAL_LOSS:
        fig.update_yaxes(range=[-0.03, 1.03])
    note = ladder_note(d)
    head = f"{measure} against model size" + (f" — {title}" if title else "")
    presets = [p for p in PRESETS if p in set(d["preset"].dropna())]
    fig.update_layout(title=head + (f"<br><sup>{'only ' + ', '.join(presets) + ' trained; ' if presets else ''}"
                                    "size ladder not trained yet</sup>" if note else ""),
                      height=440, legend={"orientation": "h", "y": -0.2, "yanchor": "top"})
    return fig
