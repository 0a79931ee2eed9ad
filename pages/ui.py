"""Helpers the pages share (not a page): cached model manager and store, decoding-settings widgets,
metric formatting, and the side-by-side streaming runner.

Streaming side by side. `st.write_stream` consumes one iterator, and no Streamlit call is safe from a thread
other than the script's. So a `CompareJob` starts one worker thread per column; workers only put events on a
queue, and the script thread drains the queue and redraws `st.empty()` placeholders (`render_job`). The job
lives in `st.session_state`, so when a click (Stop) reruns the script, the new run finds the same job, the
Stop callback sets the job's `threading.Event` (polled by the generators' `should_stop`), and the partial
text stays on screen. Models run one after the other by default (fair timing on shared cores).

Usage from a page:
    job = CompareJob([Slot("toy-mamba", "toy-mamba", prompt), ...], settings, get_manager())
    st.session_state["my_job"] = job.start()
    render_job(st.session_state["my_job"])
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.interface import GenerationError, GenerationResult, GenSettings, ModelInfo, TokenEvent

log = logging.getLogger(__name__)
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


def device_setting() -> str:
    return os.environ.get("SSM_ARENA_DEVICE", "auto") or "auto"


def results_dir() -> Path:
    return Path(os.environ.get("SSM_ARENA_RESULTS") or REPO / "results")


@st.cache_resource(show_spinner=False)
def _import_once(db: str, folder: str) -> str | None:
    """Import results/*.jsonl into an empty store; returns the import's problems (bad lines) or None."""
    from store import StoreImportError

    store = get_store()
    if len(store.runs()) or not sorted(Path(folder).glob("*.jsonl")):
        return None
    with st.spinner(f"First start: importing committed results from {folder} ..."):
        try:
            store.import_results_dir(folder)
        except StoreImportError as e:  # the good lines went in; remember the sentence, don't retry each run
            return str(e)
    return None


def ensure_results_imported() -> None:
    """On first start, fill an empty store from results/*.jsonl (once per process and store)."""
    try:
        problems = _import_once(os.environ.get("SSM_ARENA_DB", ""), str(results_dir()))
    except Exception as e:  # e.g. the store is locked by another program: retried on the next run
        problems = error_sentence(e)
    if problems:
        st.warning(f"Some committed results could not be imported: {problems}")


def error_sentence(e: BaseException) -> str:
    """The user-facing sentence of an exception (ours carry one); never a traceback."""
    msg = str(e).strip()
    if isinstance(e, (GenerationError, ValueError)) or type(e).__module__.startswith(("backend", "store")):
        return msg or type(e).__name__
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


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


# ---------------------------------------------------------------- streaming job
@dataclass
class Slot:
    """One output column: a label, the model that fills it, and its prompt."""

    label: str
    model: str
    prompt: str
    status: str = "waiting"  # waiting | loading | running | done | error | skipped
    text: str = ""
    token_times: list[float] = field(default_factory=list)  # elapsed_s of each generated token
    prompt_tokens: int | None = None
    info: ModelInfo | None = None
    result: GenerationResult | None = None
    error: str | None = None
    version: int = 0  # bumped on every change, so the page redraws only the columns that changed


class CompareJob:
    """Worker threads (one per slot) that stream into a queue; the script thread applies the events."""

    def __init__(self, slots: list[Slot], settings: GenSettings, manager, parallel: bool = False,
                 device: str | None = None, on_finish: Callable[[list[GenerationResult]], list] | None = None):
        """on_finish(results) runs once, in the last worker thread, after every slot ended (so saving does
        not depend on the page still being open); it returns notes [(level, text)], level "info" or
        "warning", that the page shows under the columns."""
        self.slots, self.settings, self.manager, self.parallel = slots, settings, manager, parallel
        self.device = device or device_setting()
        self.on_finish = on_finish
        self.stop = threading.Event()
        self.events: queue.Queue = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.started_at = time.time()
        self.notes: list[tuple[str, str]] = []
        self._final: dict[int, GenerationResult] = {}  # written by workers (slots belong to the script)
        self._left = len(slots)
        self._lock = threading.Lock()

    def start(self) -> CompareJob:
        prev = None
        for i, slot in enumerate(self.slots):
            done = threading.Event()
            t = threading.Thread(target=self._work, args=(i, slot, prev, done), daemon=True,
                                 name=f"arena-{slot.model}")
            self.threads.append(t)
            prev = None if self.parallel else done
        for t in self.threads:
            t.start()
        return self

    def _work(self, i: int, slot: Slot, wait_for: threading.Event | None, done: threading.Event) -> None:
        put = self.events.put
        try:
            if wait_for is not None:
                wait_for.wait()
            if self.stop.is_set():
                put((i, "skipped", "Stopped before this model started."))
                return
            put((i, "status", "loading"))
            gen = self.manager.get(slot.model, device=self.device)
            put((i, "info", gen.info))
            try:
                put((i, "prompt_tokens", gen.count_tokens(slot.prompt)))
            except Exception:  # counting is a nicety; stream() reports real prompt errors
                pass
            put((i, "status", "running"))
            for ev in gen.stream(slot.prompt, self.settings, should_stop=self.stop.is_set):
                if isinstance(ev, GenerationResult):
                    self._final[i] = ev
                put((i, "event", ev))
        except Exception as e:
            log.info("generation failed for %s", slot.model, exc_info=True)
            put((i, "error", error_sentence(e)))
        finally:
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                self._finish()
            done.set()
            put((i, "end", None))

    def _finish(self) -> None:
        results = [self._final[k] for k in sorted(self._final)]
        if self.on_finish is None or not results:
            return
        try:
            self.notes.extend(self.on_finish(results) or [])
        except Exception as e:
            log.warning("on_finish failed", exc_info=True)
            self.notes.append(("warning", f"Finishing this comparison failed: {error_sentence(e)}"))

    def drain(self) -> bool:
        """Apply queued events to the slots (script thread only). Returns whether anything changed."""
        changed = False
        while True:
            try:
                i, kind, payload = self.events.get_nowait()
            except queue.Empty:
                return changed
            changed = True
            s = self.slots[i]
            s.version += 1
            if kind == "status":
                s.status = payload
            elif kind == "info":
                s.info = payload
            elif kind == "prompt_tokens":
                s.prompt_tokens = payload
            elif kind == "error":
                s.status, s.error = "error", payload
            elif kind == "skipped":
                s.status, s.error = "skipped", payload
            elif kind == "event" and isinstance(payload, TokenEvent):
                s.text += payload.text
                s.token_times.append(payload.elapsed_s)
            elif kind == "event" and isinstance(payload, GenerationResult):
                s.result, s.status, s.text = payload, "done", payload.text
                s.prompt_tokens = payload.metrics.prompt_tokens

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads) or not self.events.empty()

    def results(self) -> list[GenerationResult]:
        return [s.result for s in self.slots if s.result is not None]


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
