"""The drawing half of the side-by-side streaming runner: one column per model with live metrics.

The runner itself (`Slot`, `CompareJob`: worker threads that only fill a queue) lives in
backend/generation/compare.py. The job lives in `st.session_state`, so when a click (Stop) reruns the script,
the new run finds the same job, the Stop callback sets the job's `threading.Event`, and the partial text
stays on screen; `render_job` drains the job's queue in the script thread and redraws `st.empty()`
placeholders.

Each column shows what the model saw (the prompt, muted, its end when long), then the continuation as text,
a right / wrong mark where a reference exists, the metrics (medians and their range when the job timed
several runs; this model's memory as weights + cache, beside the whole process's figure, labelled as such)
and a sentence on the path that ran. `anonymous=True` (blind A/B) shows only prompt and text.

Usage from a page:
    job = CompareJob([Slot("toy-mamba", "toy-mamba", prompt), ...], settings, get_manager())
    st.session_state["my_job"] = job.start()
    render_job(st.session_state["my_job"], reference=("Paris", "first_line"))
"""

from __future__ import annotations

import statistics
import time

import pandas as pd
import streamlit as st

from backend.arena.examples import mark
from backend.arena.explain import path_explanation, weight_bytes
from backend.generation.compare import LINE_END, CompareJob, Slot
from backend.generation.recording import repeat_stats
from pages.components.fmt import fmt_bytes, fmt_num, fmt_spread, plain_markdown

CACHE_LABELS = {"kv": "KV cache", "ssm_state": "conv + SSM state", "ssm_state+kv": "SSM state + KV cache",
                "none": "cache"}
PROCESS_LABELS = {"cuda_allocated": "peak GPU memory allocated by the whole process (every loaded model)",
                  "cpu_rss": "peak RSS of the whole process (app + every loaded model)"}
FINAL = ("done", "error", "skipped")
PROMPT_TAIL_CHARS = 400
FINISH = {"eos": "end of text", "length": "max new tokens", "cancelled": "stopped", LINE_END: "end of line"}


def _timing(s: Slot) -> dict[str, str]:
    m = s.result.metrics if s.result else None
    if m is not None and len(s.runs) > 1:
        st_ = repeat_stats(s.runs)
        n = len(s.runs)

        def med(name, unit, digits=1):
            return fmt_spread(*st_[name], unit=unit, digits=digits) if name in st_ else "—"

        return {
            f"time to first token (median of {n}, range)": med("ttft_ms", " ms"),
            f"prefill (median of {n}, range)": med("prefill_ms", " ms"),
            f"decode tokens/s (median of {n}, range)": med("decode_tok_s", ""),
            f"time per output token (median of {n}, range)": med("tpot_ms", " ms", 2),
        }
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
    return {
        "time to first token": fmt_num(ttft, " ms"),
        "prefill": fmt_num(prefill, " ms"),
        "decode tokens/s": fmt_num(tps),
        "time per output token (median / p90)": f"{fmt_num(tpot, ' ms', 2)} / {fmt_num(p90, ' ms', 2)}",
    }


def live_metrics(s: Slot) -> dict[str, str]:
    """Metric name -> value for one column: measured values once finished, estimates while streaming."""
    m = s.result.metrics if s.result else None
    cache_label = CACHE_LABELS.get(m.cache_kind, m.cache_kind) if m else "KV cache / SSM state"
    path = m.path if m else (s.info.path if s.info else None)
    weights = weight_bytes(s.info) if s.info else None
    if m is not None and weights is not None:
        memory = f"{fmt_bytes(weights + (m.cache_bytes or 0))} = {fmt_bytes(weights)} + {fmt_bytes(m.cache_bytes or 0)}"
    else:
        memory = "—"
    process_label = PROCESS_LABELS.get(m.peak_mem_kind, m.peak_mem_kind) if m else "peak memory of the whole process"
    return {
        "prompt tokens": fmt_num(s.prompt_tokens, digits=0),
        "new tokens": fmt_num(m.new_tokens if m else len(s.token_times), digits=0),
        **_timing(s),
        "this model's memory (weights + cache)": memory,
        f"cache bytes ({cache_label})": fmt_bytes(m.cache_bytes) if m else "—",
        process_label: fmt_bytes(m.peak_mem_bytes) if m else "—",
        "kernel / attention path": path or "—",
        "device / dtype": f"{m.device} / {m.dtype}" if m else (f"{s.info.device} / {s.info.dtype}" if s.info else "—"),
        "finish reason": (s.result.finish_reason if s.result else s.status),
    }


def _draw_status(s: Slot, status_ph, elapsed: float | None, anonymous: bool = False) -> None:
    if s.error:
        (status_ph.error if s.status == "error" else status_ph.info)(s.error)
    elif s.status == "done":
        reason = s.result.finish_reason if s.result else ""
        runs = f" · {len(s.runs)} timed runs" if len(s.runs) > 1 else ""
        status_ph.caption("stopped: partial output kept" if reason == "cancelled"
                          else f"finished ({reason}: {FINISH.get(reason, reason)}){runs}")
    else:
        label = {"waiting": "waiting for the previous model", "loading": "loading model",
                 "warming up": "warm-up runs (untimed)", "running": "generating",
                 "repeating": f"timed repeats ({len(s.runs)} done)"}.get(s.status, s.status)
        if anonymous and s.status == "waiting":
            label = "waiting for the other side"
        status_ph.caption(f"{label} ... {elapsed:.0f} s" if elapsed is not None else label)


def _draw_mark(s: Slot, ph, reference: tuple[str, str] | None) -> None:
    if not reference or s.status != "done" or s.result is None:
        return
    ref, rule = reference
    got = mark(s.result.text, ref, rule)
    with ph.container():
        st.badge("right" if got.correct else "wrong", color="green" if got.correct else "red",
                 icon=":material/check:" if got.correct else ":material/close:")
        st.text(f"answer: {got.extracted!r} · reference: {ref!r} ({rule.replace('_', ' ')}, exact match)")


def _draw_slot(s: Slot, ph: dict, elapsed: float | None = None, anonymous: bool = False,
               reference: tuple[str, str] | None = None) -> None:
    if s.info is not None and not anonymous:
        note = f"{s.info.family} · {fmt_num(s.info.n_params / 1e6, 'M params', 2)}"
        note += " · untrained placeholder" if s.info.placeholder else ""
        ctx = s.info.train_context
        if ctx and s.prompt_tokens and s.prompt_tokens > ctx:
            note += f" · prompt is longer than the {ctx} tokens it was trained on: expect degraded output"
        ph["info"].caption(note)
    _draw_status(s, ph["status"], elapsed, anonymous)
    ph["text"].code(s.text or " ", language=None, wrap_lines=True)
    _draw_mark(s, ph["mark"], reference)
    if anonymous:
        return
    metrics = live_metrics(s)
    if s.status in FINAL:
        table = pd.DataFrame({"value": metrics})
        table.index.name = "metric"
        ph["metrics"].table(table)
        m = s.result.metrics if s.result else None
        if m is not None:
            ph["path"].caption(path_explanation(m.path, s.result.family, m.device))
    else:  # while streaming: plain text, far cheaper than a table (drawing shares the GIL with decoding)
        width = max(map(len, metrics))
        ph["metrics"].text("\n".join(f"{k.ljust(width)}  {v}" for k, v in metrics.items()))


def render_job(job: CompareJob, poll_s: float = 0.1, min_redraw_s: float = 0.3, anonymous: bool = False,
               reference: tuple[str, str] | None = None, show_prompt: bool = True) -> None:
    """Draw one column per slot and keep redrawing from the queue until the job's threads end, then the
    job's notes (e.g. where it was saved). Redraws are rationed (a column at most every `min_redraw_s`,
    only when it changed): the script thread shares the GIL with the decode loops it displays.
    reference: (answer, extraction rule) to mark each finished column right or wrong."""
    phs = []
    for col, s in zip(st.columns(len(job.slots)), job.slots, strict=True):
        with col:
            st.subheader(s.label)
            info = st.empty()
            if show_prompt:
                tail = len(s.prompt) > PROMPT_TAIL_CHARS
                st.caption(("Prompt (its last characters)" if tail else "Prompt") + " — what the model saw:  \n"
                           + plain_markdown(s.prompt, PROMPT_TAIL_CHARS))
            phs.append({"info": info, "status": st.empty(), "text": st.empty(), "mark": st.empty(),
                        "metrics": st.empty(), "path": st.empty()})
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
                    _draw_slot(s, ph, elapsed=elapsed, anonymous=anonymous, reference=reference)
                    drawn[k] = s.version
            last_draw = now
        # At least every 0.5 s a Streamlit call: each one is a point where a click (Stop) can interrupt this
        # run, so a long model load must not leave the script silent (and the caption shows the time).
        if alive and now - last_beat >= 0.5:
            for s, ph in zip(job.slots, phs, strict=True):
                if s.status not in FINAL:
                    _draw_status(s, ph["status"], elapsed, anonymous)
            last_beat = now
        if not alive:
            break
        time.sleep(poll_s)
    for level, note in job.notes:
        (st.warning if level == "warning" else st.caption)(note)


def chart_inputs(job: CompareJob) -> tuple[list, dict[str, int | None]]:
    """(column label, result) pairs and each column's weight bytes, for charts.comparison_chart."""
    weights = {s.label: weight_bytes(s.info) if s.info else None for s in job.slots}
    return job.labelled_results(), weights
