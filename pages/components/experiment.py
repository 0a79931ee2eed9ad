"""Streamlit parts shared by the experiment pages (Few-shot, Long context, Chain of thought, RAG
evaluation) and the History page's run comparison.

Only the pages import this module. It never imports torch or duckdb: models come from the page's
ModelManager (`get_generator`), rows from the page's store. Every model output is shown as text
(st.code / escaped markdown), never as HTML.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.experiments.config import PROFILES, RUN_KIND, ConfigError, ExperimentConfig
from backend.experiments.config import default_models as config_default_models
from backend.experiments.jobs import ExperimentJob
from backend.experiments.views import compare_runs, compare_summary, filters_of
from pages.components.inside import experiment_button

KEEP = {"persist_state": "session"}  # widget values survive a visit to another page

FILTER_LABELS = {"strict": "strict (stated answer)", "flexible": "flexible (any number / looser rule)",
                 "acc": "accuracy over choices"}


def default_models() -> tuple[list[str], list[str]]:
    """(all registry names, the default selection: the same as the CLI's)."""
    from backend.models import registry

    return [s.name for s in registry.list_specs()], config_default_models()


def common_widgets(experiment: str, key: str) -> tuple[list[str], int, int]:
    names, default = default_models()
    models = st.multiselect("Models", names, default=[m for m in default if m in names], key=f"{key}_models",
                            **KEEP)
    c1, c2 = st.columns(2)
    n = c1.number_input("Instances per point (same instances for every model)", 1, 10_000,
                        PROFILES["quick"][experiment]["n"], key=f"{key}_n", **KEEP)
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed", **KEEP)
    return models, int(n), int(seed)


def build_config(experiment: str, models: list[str], n: int, seed: int, sweep: dict, task: str = "",
                 data: str | None = None) -> ExperimentConfig | None:
    """The config the run button will use, with its equivalent CLI command shown; None (with the reason
    shown) when the widgets do not make a valid config."""
    try:
        cfg = ExperimentConfig(experiment, models, n=n, seed=seed, sweep=sweep, task=task, data=data or None)
    except ConfigError as e:
        st.warning(str(e))
        return None
    st.caption("Equivalent command (runs the same configuration headless and writes to the same store):")
    st.code(cfg.to_cli(), language="bash", wrap_lines=True)
    return cfg


def _start(key: str, cfg: ExperimentConfig, get_generator: Callable, store, resume: str | None = None) -> None:
    if st.session_state.get(f"{key}_ray"):  # shards on a Ray cluster; ray itself loads in the job's thread
        from backend.experiments.ray_runner import RayExperimentJob

        address = (st.session_state.get(f"{key}_ray_address") or "").strip() or None
        st.session_state[f"{key}_job"] = RayExperimentJob(cfg, store, address, resume_run_id=resume).start()
        return
    st.session_state[f"{key}_job"] = ExperimentJob(cfg, get_generator, store, resume_run_id=resume).start()


def ray_controls(key: str, cfg: ExperimentConfig | None) -> None:
    """Send the run to a Ray cluster instead of this process (one shard per model, progress per shard)."""
    with st.expander("Run on a Ray cluster", expanded=bool(st.session_state.get(f"{key}_ray"))):
        use = st.toggle("Send Run to a Ray cluster (one shard per model, spread over its GPUs or CPUs)",
                        key=f"{key}_ray", **KEEP)
        address = st.text_input("Cluster address: the head's host:port (empty: a cluster of this machine alone)",
                                key=f"{key}_ray_address", disabled=not use, **KEEP)
        st.caption("Needs Ray (`pip install ray==2.60.0`). Start a cluster with `ray start --head` on one machine "
                   "and `ray start --address HEAD:PORT` on the others (README: Ray). Results land in this "
                   "dashboard's store.")
        if use and cfg is not None:
            st.code(f"{cfg.to_cli()} --ray {address.strip()}".rstrip(), language="bash", wrap_lines=True)


def _cancel(key: str) -> None:
    job = st.session_state.get(f"{key}_job")
    if job is not None:
        job.cancel()


def run_controls(key: str, cfg: ExperimentConfig | None, get_generator: Callable, store) -> ExperimentJob | None:
    """Run / Cancel buttons and the live progress of this page's job. Returns the job (if any)."""
    job: ExperimentJob | None = st.session_state.get(f"{key}_job")
    running = job is not None and job.running
    ray_controls(key, cfg)
    c1, c2, _ = st.columns([1, 1, 4])
    c1.button("Run", type="primary", disabled=running or cfg is None, key=f"{key}_run",
              on_click=_start, args=(key, cfg, get_generator, store))
    c2.button("Cancel", disabled=not running, key=f"{key}_cancel", on_click=_cancel, args=(key,),
              icon=":material/stop_circle:", help="Stop after the current instance; finished instances are kept "
                                                  "and the run can be resumed.")
    if job is not None:
        show_job(job)
        if running:  # it finished while this script waited: draw the buttons (and results) once more
            st.rerun()
    return job


def _pace(job: ExperimentJob) -> str:
    """' · 0.37 instances/s · about 4 min left' once the rate is known."""
    rate, eta = job.rate(), job.eta_s()
    if rate is None:
        return ""
    left = "" if eta is None or not job.running else (f" · about {eta / 60:.0f} min left" if eta >= 90
                                                      else f" · about {eta:.0f} s left")
    return f" · {rate:.2f} instances/s{left}"


def show_job(job: ExperimentJob, poll_s: float = 0.25) -> None:
    """Live progress of a job until it ends (every redraw is a point where a click can rerun the page)."""
    label = f"{job.config.experiment}: {', '.join(job.config.models)}"
    with st.status(f"Running {label}", expanded=job.running) as status:
        bar = st.progress(0.0)
        shard_table, shown = st.empty(), None
        while True:
            shards = getattr(job, "shards", None)  # a Ray job: the shards' own counts
            if shards and shards != shown:
                shown = {s: dict(v) for s, v in shards.items()}
                shard_table.dataframe(shard_frame(shown), hide_index=True)
            alive = job.running
            frac = job.done / job.total if job.total else 0.0
            bar.progress(min(frac, 1.0), text=f"{job.done} / {job.total or '?'} · {job.message}" + _pace(job)
                         + (" · cancelling ..." if job.stop.is_set() and alive else ""))
            if not alive:
                break
            time.sleep(poll_s)
        secs = (job.finished_at or time.time()) - job.started_at
        if job.status == "completed":
            status.update(label=f"Finished {label} in {secs:.0f} s (run {job.run_id[:8]})", state="complete",
                          expanded=False)
        elif job.status == "cancelled":
            status.update(label=f"Cancelled after {job.done} of {job.total} (run {(job.run_id or '')[:8]}); "
                                "finished instances are kept and Resume continues", state="complete", expanded=True)
        else:
            status.update(label=f"Failed: {job.error}", state="error", expanded=True)
            st.error(f"The experiment stopped with an error: {job.error}")
    for w in (job.outcome.warnings if job.outcome else [])[:20]:
        st.warning(f"Skipped a malformed line: {w}")


def shard_frame(shards: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"shard": s, "model": v.get("model"), "done": f"{v.get('done', 0)} / {v.get('total', 0)}",
                          "node": v.get("node") or "", "status": v.get("status")} for s, v in shards.items()])


def run_label(row) -> str:
    when = pd.Timestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M") if pd.notna(row["created_at"]) else ""
    cfg = row["config"] if isinstance(row["config"], dict) else {}
    dev = ""
    infos = {}
    for part in ("meta", "summary"):
        d = row.get(part) if isinstance(row.get(part), dict) else {}
        infos.update(d.get("model_info") or {})
    devices = sorted({str(i.get("device")) for i in infos.values() if isinstance(i, dict)})
    if devices:
        dev = " · " + "/".join(devices)
    task = cfg.get("task") or (Path(cfg["data"]).name if cfg.get("data") else "")
    if cfg.get("experiment") == "rag" and not cfg.get("task") and cfg.get("data"):
        task = f"saved plan {task}"  # `--plan FILE`: contexts retrieved elsewhere (the GPU runs)
    return (f"{when} · {row['status']} · {task + ' · ' if task else ''}{', '.join(cfg.get('models', []))} · "
            f"n={cfg.get('n')}{dev} · {str(row['run_id'])[:8]}")


def stored_runs(store, experiment: str) -> pd.DataFrame:
    runs = store.runs(kind=RUN_KIND[experiment])
    if not runs.empty:
        runs = runs.assign(label=[run_label(r) for _, r in runs.iterrows()])
    return runs


def pick_run(runs: pd.DataFrame, key: str, label: str = "Stored run", prefer: str | None = None):
    """Select box over stored runs (newest first); returns the chosen row. A new `prefer` (the run this
    page just made) is selected once; after that the user's choice stands."""
    ids = list(runs["run_id"])
    labels = dict(zip(runs["run_id"], runs["label"], strict=True))
    if prefer in ids and st.session_state.get(f"{key}_preferred") != prefer:
        st.session_state[f"{key}_preferred"] = prefer
        st.session_state[key] = prefer
    if st.session_state.get(key) not in ids:
        st.session_state[key] = prefer if prefer in ids else ids[0]
    chosen = st.selectbox(label, ids, format_func=lambda r: labels[r], key=key)
    return runs[runs["run_id"] == chosen].iloc[0]


def resume_button(row, key: str, get_generator: Callable, store) -> None:
    if row["status"] in ("cancelled", "failed", "running"):
        cfg = ExperimentConfig.from_dict(row["config"])
        st.caption(f"This run is {row['status']}: resuming runs only the unfinished instances. From a terminal: "
                   f"`python -m backend experiment {cfg.experiment} --resume {row['run_id']}`")
        st.button("Resume this run", key=f"{key}_resume_stored", on_click=_start,
                  args=(key, cfg, get_generator, store, row["run_id"]))


def results_header(store, experiment: str, label: str, key: str, job, get_generator: Callable):
    """The Results part every experiment page starts with: pick a stored run (the one just made first),
    offer Resume, return (stored runs, the picked run's row, its predictions). Stops the page with a hint when there is nothing yet."""
    st.subheader("Results")
    runs = stored_runs(store, experiment)
    if runs.empty:
        st.info(f"No {label} run is stored yet. Press Run above, or run `python -m backend experiment "
                f"{experiment}` in a terminal; runs from either appear here.")
        st.stop()
    row = pick_run(runs, f"{key}_pick", prefer=job.run_id if job else None)
    resume_button(row, key, get_generator, store)
    preds = store.predictions(run_id=row["run_id"])
    if preds.empty:
        st.info("This run has no finished instances yet.")
        st.stop()
    return runs, row, preds


def filter_choice(preds: pd.DataFrame, key: str, default: str = "strict") -> str:
    filters = filters_of(preds) or [default]
    if len(filters) == 1:
        return filters[0]
    index = filters.index(default) if default in filters else 0
    return st.radio("Answer extraction", filters, index=index, horizontal=True, key=key,
                    format_func=lambda f: FILTER_LABELS.get(f, f))


def train_contexts(row) -> dict[str, int | None]:
    """Each model's training context length, from the run's meta (or its summary, for parallel runs)."""
    out: dict[str, int | None] = {}
    for part in ("summary", "meta"):
        d = row.get(part) if isinstance(row.get(part), dict) else {}
        for m, i in (d.get("model_info") or {}).items():
            out[m] = out.get(m) or (i or {}).get("train_context")
    return out


def compare_section(store, runs: pd.DataFrame, key: str) -> None:
    """Two runs of the same experiment: which instances changed (matched on instance id and model)."""
    st.subheader("Compare two runs")
    if len(runs) < 2:
        st.caption("Run this experiment twice (e.g. another seed, model or device) to compare runs.")
        return
    c1, c2 = st.columns(2)

    def task_of(row) -> str:
        cfg = row["config"] if isinstance(row.get("config"), dict) else {}
        return str(cfg.get("task") or cfg.get("data") or "")

    # default pair: the newest run (B) and the newest earlier run of the same task (A), else the next newest
    tasks = [task_of(r) for _, r in runs.iterrows()]
    same = [i for i in range(1, len(runs)) if tasks[i] == tasks[0]]
    with c1:
        a = pick_run(runs, f"{key}_cmp_a", "Run A", prefer=runs["run_id"].iloc[same[0] if same else 1])
    with c2:
        b = pick_run(runs, f"{key}_cmp_b", "Run B", prefer=runs["run_id"].iloc[0])
    pa, pb = store.predictions(run_id=a["run_id"]), store.predictions(run_id=b["run_id"])
    summary = compare_summary(pa, pb)
    if summary.empty:
        st.info("These runs share no instances (different tasks, sweeps or models).")
        return
    st.dataframe(summary, hide_index=True, key=f"{key}_cmp_summary")
    changed = compare_runs(pa, pb)
    if changed.empty:
        st.success("No instance changed its answer between these runs.")
    else:
        if not changed["same_prompt"].all():
            st.caption("Some matched instances have different prompts (different configs); compare with care.")
        st.dataframe(changed, hide_index=True, key=f"{key}_cmp_changed")


def side_by_side(preds: pd.DataFrame, instance_id: str, render_output: Callable[[str, pd.Series], None],
                 models: list[str] | None = None) -> None:
    """Prompt and reference once, then one column per model with its output, extracted answer and score."""
    rows = preds[preds["instance_id"] == instance_id]
    order = {m: i for i, m in enumerate(models or [])}
    rows = rows.sort_values("model", key=lambda s: s.map(lambda m: order.get(m, len(order))), kind="stable")
    if rows.empty:
        st.caption("No predictions for this instance.")
        return
    first = rows.iloc[0]
    extra = first["extra"] if isinstance(first["extra"], dict) else {}
    n_chars = extra.get("prompt_chars") or len(first["prompt"])
    shown = "" if n_chars == len(first["prompt"]) else ", head and tail shown"
    with st.expander(f"Prompt ({n_chars:,} characters{shown})", expanded=len(first["prompt"]) < 1500):
        st.code(first["prompt"], language=None, wrap_lines=True)
    st.text(f"Reference: {first['reference']}")
    if "run_id" in rows:  # what each model keeps of this prompt (pages/inside_view.py)
        experiment_button(str(first["run_id"]), instance_id, list(rows["model"]))
    cols = st.columns(len(rows))
    for col, (_, r) in zip(cols, rows.iterrows(), strict=True):
        with col:
            st.markdown(f"**{r['model']}**")
            err = (r["extra"] or {}).get("error") if isinstance(r["extra"], dict) else None
            if err:
                st.warning(err)
                continue
            render_output(r["output"], r)
            score = r["score"]
            st.text(f"extracted: {r['extracted']!r}   score: {'—' if pd.isna(score) else f'{score:g}'}")
