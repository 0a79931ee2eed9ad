"""The drawing half of the side-by-side streaming runner: one column per model with live metrics.

The runner itself (`Slot`, `CompareJob`: worker threads that only fill a queue) lives in
backend/generation/compare.py. The job lives in `st.session_state`, so when a click (Stop) reruns the script,
the new run finds the same job, the Stop callback sets the job's `threading.Event`, and the partial text
stays on screen; `render_job` drains the job's queue in the script thread and redraws `st.empty()`
placeholders.

Usage from a page:
    job = CompareJob([Slot("toy-mamba", "toy-mamba", prompt), ...], settings, get_manager())
    st.session_state["my_job"] = job.start()
    render_job(st.session_state["my_job"])
"""

from __future__ import annotations

import statistics
import time

import pandas as pd
import streamlit as st

from backend.generation.compare import CompareJob, Slot
from pages.components.fmt import fmt_bytes, fmt_num

CACHE_LABELS = {"kv": "KV cache", "ssm_state": "conv + SSM state", "none": "cache"}
MEM_LABELS = {"cuda_allocated": "GPU allocated", "cpu_rss": "CPU RSS"}
FINAL = ("done", "error", "skipped")


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
