"""Helpers the pages share (not a page): cached model manager and store, decoding-settings widgets,
metric formatting, and the drawing half of the side-by-side streaming runner.

The runner itself (`Slot`, `CompareJob`: worker threads that only fill a queue) lives in backend/compare.py
and is re-exported here. The job lives in `st.session_state`, so when a click (Stop) reruns the script, the
new run finds the same job, the Stop callback sets the job's `threading.Event`, and the partial text stays on
screen; `render_job` drains the job's queue in the script thread and redraws `st.empty()` placeholders.

Usage from a page:
    job = CompareJob([Slot("toy-mamba", "toy-mamba", prompt), ...], settings, get_manager())
    st.session_state["my_job"] = job.start()
    render_job(st.session_state["my_job"])
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import streamlit as st

# re-exported: pages and tests use ui.CompareJob, ui.Slot, ui.device_setting, ui.error_sentence
from backend.compare import CompareJob, Slot, device_setting, error_sentence  # noqa: F401
from backend.interface import GenerationResult, GenSettings

REPO = Path(__file__).resolve().parent.parent
CACHE_LABELS = {"kv": "KV cache", "ssm_state": "conv + SSM state", "none": "cache"}
MEM_LABELS = {"cuda_allocated": "GPU allocated", "cpu_rss": "CPU RSS"}


def _leave_legacy_pages_mode() -> None:
    """Our pages live in a folder named pages/, so a fresh server starts in Streamlit's legacy "pages
    directory" mode until app.py has run st.navigation in some session. A first visit straight to a page's
    URL (a bookmark of /history) would run that page alone: legacy menu (listing ui.py too), no frame, no
    wide layout. Every page imports this module, so switch the legacy mode off here (what st.navigation
    itself does) and rerun, which now goes through app.py and lands on the same page (same url_path)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except ImportError:  # a Streamlit without this internal: nothing to fix
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()


# ---------------------------------------------------------------- shared resources (one per process)
@st.cache_resource(show_spinner=False)
def _manager(fake: str, fake_delay: str):
    from backend.manager import ModelManager

    return ModelManager()


def get_manager():
    """The process-wide ModelManager (keyed by the fake-backend env vars so tests that flip them get theirs)."""
    return _manager(os.environ.get("SSM_ARENA_FAKE", ""), os.environ.get("SSM_ARENA_FAKE_DELAY", ""))


@st.cache_resource(show_spinner=False)
def _store(path: str):
    from store import open_store

    return open_store(path or None)


def get_store():
    """The store named by SSM_ARENA_DB (default data/arena.duckdb). Raises store.StoreError with a sentence."""
    return _store(os.environ.get("SSM_ARENA_DB", ""))


def store_path() -> str:
    try:
        return str(getattr(get_store(), "path", "") or os.environ.get("SSM_ARENA_DB", "data/arena.duckdb"))
    except Exception as e:  # the frame must render even when the store cannot open
        return f"{os.environ.get('SSM_ARENA_DB', 'data/arena.duckdb')} (cannot open: {e})"


def results_dir() -> Path:
    return Path(os.environ.get("SSM_ARENA_RESULTS") or REPO / "results")


@st.cache_resource(show_spinner=False)
def _import_once(db: str, folder: str) -> str | None:
    """Import results/*.jsonl(.gz) into an empty store; returns the import's problems (bad lines) or None."""
    from store import StoreImportError

    store = get_store()
    if len(store.runs()) or not [*Path(folder).glob("*.jsonl"), *Path(folder).glob("*.jsonl.gz")]:
        return None
    with st.spinner(f"First start: importing committed results from {folder} ..."):
        try:
            store.import_results_dir(folder)
        except StoreImportError as e:  # the good lines went in; remember the sentence, don't retry each run
            return str(e)
    return None


def ensure_results_imported() -> None:
    """On first start, fill an empty store from results/*.jsonl and *.jsonl.gz (once per process and store)."""
    try:
        problems = _import_once(os.environ.get("SSM_ARENA_DB", ""), str(results_dir()))
    except Exception as e:  # e.g. the store is locked by another program: retried on the next run
        problems = error_sentence(e)
    if problems:
        st.warning(f"Some committed results could not be imported: {problems}")


def store_or_stop():
    """The page's store with committed results imported, or an error sentence and the page stops."""
    try:
        store = get_store()
    except Exception as e:
        st.error(f"The results store could not be opened: {error_sentence(e)}")
        st.stop()
    ensure_results_imported()
    return store


def generator_getter():
    """`name -> Generator` on the sidebar's device, through the process-wide model manager."""
    manager, device = get_manager(), device_setting()
    return lambda name: manager.get(name, device=device)


# ---------------------------------------------------------------- formatting
def fmt_num(x, unit: str = "", digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    return f"{x:,.{digits}f}{unit}"


def fmt_bytes(n) -> str:
    if n is None or (isinstance(n, float) and n != n):
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def exportable(df: pd.DataFrame) -> pd.DataFrame:
    """Dict / list cells (config, extra) as JSON text, so CSV and Parquet get one type per column."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, dict | list)).any():
            out[c] = out[c].map(lambda v: json.dumps(v, default=str) if isinstance(v, dict | list) else v)
    return out


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    exportable(df).to_parquet(buf, index=False)
    return buf.getvalue()


SETTING_DEFAULTS = {"max_new": 64, "decoding": "greedy", "seed": 0, "temp": 1.0, "top_p": 1.0}


def settings_widgets(key: str) -> GenSettings:
    """Decoding settings shared by every column (same settings for all models: fair comparison).

    Widget keys are `<key>_max_new`, `<key>_decoding`, ... so callbacks can rebuild the settings with
    `settings_from_state(key)`."""
    d, keep = SETTING_DEFAULTS, {"persist_state": "session"}  # kept across page switches
    c1, c2, c3 = st.columns(3)
    c1.number_input("Max new tokens", 1, 4096, d["max_new"], key=f"{key}_max_new", **keep)
    sampling = c2.radio("Decoding", ["greedy", "sampling"], horizontal=True, key=f"{key}_decoding", **keep)
    c3.number_input("Seed", 0, 2**31 - 1, d["seed"], key=f"{key}_seed", **keep)
    c4, c5 = st.columns(2)
    c4.slider("Temperature", 0.05, 2.0, d["temp"], 0.05, key=f"{key}_temp", disabled=sampling == "greedy", **keep)
    c5.slider("Top-p", 0.05, 1.0, d["top_p"], 0.05, key=f"{key}_top_p", disabled=sampling == "greedy", **keep)
    return settings_from_state(key)


def settings_from_state(key: str) -> GenSettings:
    def get(name):
        return st.session_state.get(f"{key}_{name}", SETTING_DEFAULTS[name])

    return GenSettings(max_new_tokens=int(get("max_new")), do_sample=get("decoding") == "sampling",
                       temperature=float(get("temp")), top_p=float(get("top_p")), seed=int(get("seed")))


def live_metrics(s: Slot) -> dict[str, str]:
    """Metric name -> value for one column: measured values once finished, estimates while streaming."""
    m = s.result.metrics if s.result else None
    t = s.token_times
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    if m is not None:
        ttft, prefill, tps, tpot, p90 = m.ttft_ms, m.prefill_ms, m.decode_tok_s, m.tpot_ms, m.tpot_p90_ms
    else:
        ttft = t[0] * 1000 if t else None
        prefill = None
        tps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else None
        tpot = statistics.median(gaps) * 1000 if gaps else None
        p90 = statistics.quantiles(gaps, n=10)[-1] * 1000 if len(gaps) >= 2 else None
    mem_label = MEM_LABELS.get(m.peak_mem_kind, m.peak_mem_kind) if m else "GPU allocated / CPU RSS"
    cache_label = CACHE_LABELS.get(m.cache_kind, m.cache_kind) if m else "KV cache / SSM state"
    path = m.path if m else (s.info.path if s.info else None)
    return {
        "prompt tokens": fmt_num(s.prompt_tokens, digits=0),
        "new tokens": fmt_num(m.new_tokens if m else len(t), digits=0),
        "time to first token": fmt_num(ttft, " ms"),
        "prefill": fmt_num(prefill, " ms"),
        "decode tokens/s": fmt_num(tps),
        "time per output token (median / p90)": f"{fmt_num(tpot, ' ms', 2)} / {fmt_num(p90, ' ms', 2)}",
        f"peak memory ({mem_label})": fmt_bytes(m.peak_mem_bytes) if m else "—",
        f"cache bytes ({cache_label})": fmt_bytes(m.cache_bytes) if m else "—",
        "kernel / attention path": path or "—",
        "device / dtype": f"{m.device} / {m.dtype}" if m else (f"{s.info.device} / {s.info.dtype}" if s.info else "—"),
        "finish reason": s.result.finish_reason if s.result else s.status,
    }


FINAL = ("done", "error", "skipped")


def _draw_status(s: Slot, status_ph, elapsed: float | None) -> None:
    if s.error:
        (status_ph.error if s.status == "error" else status_ph.info)(s.error)
    elif s.status == "done":
        reason = s.result.finish_reason if s.result else ""
        status_ph.caption("stopped: partial output kept" if reason == "cancelled" else f"finished ({reason})")
    else:
        label = {"waiting": "waiting for the previous model", "loading": "loading model",
                 "running": "generating"}.get(s.status, s.status)
        status_ph.caption(f"{label} ... {elapsed:.0f} s" if elapsed is not None else label)


def _draw_slot(s: Slot, info_ph, status_ph, text_ph, metrics_ph, elapsed: float | None = None) -> None:
    if s.info is not None:
        note = f"{s.info.family} · {fmt_num(s.info.n_params / 1e6, 'M params', 2)}"
        note += " · untrained placeholder" if s.info.placeholder else ""
        ctx = s.info.train_context
        if ctx and s.prompt_tokens and s.prompt_tokens > ctx:
            note += f" · prompt is longer than the {ctx} tokens it was trained on: expect degraded output"
        info_ph.caption(note)
    _draw_status(s, status_ph, elapsed)
    text_ph.code(s.text or " ", language=None, wrap_lines=True)
    metrics = live_metrics(s)
    if s.status in FINAL:
        table = pd.DataFrame({"value": metrics})
        table.index.name = "metric"
        metrics_ph.table(table)
    else:  # while streaming: plain text, far cheaper than a table (drawing shares the GIL with decoding)
        width = max(map(len, metrics))
        metrics_ph.text("\n".join(f"{k.ljust(width)}  {v}" for k, v in metrics.items()))


def render_job(job: CompareJob, poll_s: float = 0.1, min_redraw_s: float = 0.3) -> None:
    """Draw one column per slot and keep redrawing from the queue until the job's threads end, then the
    job's notes (e.g. where it was saved). Redraws are rationed (a column at most every `min_redraw_s`,
    only when it changed): the script thread shares the GIL with the decode loops it displays."""
    phs = []
    for col, s in zip(st.columns(len(job.slots)), job.slots, strict=True):
        with col:
            st.subheader(s.label)
            phs.append((st.empty(), st.empty(), st.empty(), st.empty()))
    drawn = [-1] * len(job.slots)
    last_draw = last_beat = 0.0
    while True:
        alive = job.running
        job.drain()
        now = time.monotonic()
        elapsed = time.time() - job.started_at if alive else None
        if not alive or now - last_draw >= min_redraw_s:
            for k, (s, ph) in enumerate(zip(job.slots, phs, strict=True)):
                if s.version != drawn[k]:
                    _draw_slot(s, *ph, elapsed=elapsed)
                    drawn[k] = s.version
            last_draw = now
        # At least every 0.5 s a Streamlit call: each one is a point where a click (Stop) can interrupt this
        # run, so a long model load must not leave the script silent (and the caption shows the time).
        if alive and now - last_beat >= 0.5:
            for s, ph in zip(job.slots, phs, strict=True):
                if s.status not in FINAL:
                    _draw_status(s, ph[1], elapsed)
            last_beat = now
        if not alive:
            break
        time.sleep(poll_s)
    for level, note in job.notes:
        (st.warning if level == "warning" else st.caption)(note)


def metrics_frame(results: list[GenerationResult]) -> pd.DataFrame:
    """Long table (model, metric, value) of the finished columns, for a bar chart."""
    rows = []
    for r in results:
        m = r.metrics
        for name, val in (("time to first token (ms)", m.ttft_ms), ("prefill (ms)", m.prefill_ms),
                          ("time per output token (ms)", m.tpot_ms), ("decode tokens/s", m.decode_tok_s),
                          ("peak memory (MiB)", m.peak_mem_bytes / 2**20 if m.peak_mem_bytes else None),
                          ("cache (MiB)", m.cache_bytes / 2**20 if m.cache_bytes is not None else None)):
            if val is not None:
                rows.append({"model": r.model, "metric": name, "value": float(val)})
    return pd.DataFrame(rows, columns=["model", "metric", "value"])


def comparison_chart(results: list[GenerationResult]):
    """Plotly bar chart, one panel per metric with its own axis; None when nothing finished."""
    import plotly.express as px

    df = metrics_frame(results)
    if df.empty:
        return None
    fig = px.bar(df, x="model", y="value", color="model", facet_col="metric", facet_col_wrap=3,
                 facet_row_spacing=0.18, height=520)
    fig.update_yaxes(matches=None, showticklabels=True, title=None)
    fig.update_xaxes(title=None, showticklabels=False)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    return fig
