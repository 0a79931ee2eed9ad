"""The side-by-side streaming runner behind the Arena and the RAG page (no Streamlit here).

`st.write_stream` consumes one iterator, and no Streamlit call is safe from a thread other than the script's.
So a `CompareJob` starts one worker thread per `Slot` (output column); workers only put events on a queue,
and the page's script thread calls `drain()` to apply them to the slots and redraws its placeholders
(`pages.components.streaming.render_job`). `stop` is a `threading.Event` polled by the generators' `should_stop`, so a Stop
click (a rerun that finds the job in `st.session_state`) ends every column and keeps the partial text.
Models run one after the other by default (fair timing on shared cores).

Options for trustworthy numbers and question answering:
  warmup      untimed generations of the same prompt before the shown one (first-call costs of that prompt
              length: allocator growth, kernel selection), so the first measured run is not a warm-up
  repeats     the shown (streamed) run plus repeats - 1 more, unstreamed; each slot keeps every run's
              GenMetrics in `runs`, so the page shows medians with their spread
  stop_at_line stop a column at the first line break after some text (the toy world's QA answers end
              there); such a run finishes with reason "newline" (the tokens up to and including the line
              break are measured and kept)
A model that fails (e.g. cannot load) keeps its sentence in `failures`, which `on_finish` can record.

Usage:
    job = CompareJob([Slot("toy-mamba", "toy-mamba", prompt), ...], settings, manager).start()
    while job.running:
        job.drain()  # then draw job.slots
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from backend.generation.interface import (
    GenerationError,
    GenerationResult,
    GenMetrics,
    GenSettings,
    ModelInfo,
    TokenEvent,
)

LINE_END = "newline"  # finish reason of a run stopped at the end of its first line (stop_at_line)
WARMUP_MAX_NEW = 8  # new tokens of a warm-up run: enough to warm the decode step, short on a CPU

log = logging.getLogger(__name__)


def device_setting() -> str:
    """Where models load: SSM_ARENA_DEVICE (`auto`, `cpu` or `cuda`), default `auto`."""
    return os.environ.get("SSM_ARENA_DEVICE", "auto") or "auto"


def error_sentence(e: BaseException) -> str:
    """The user-facing sentence of an exception (ours carry one); never a traceback."""
    msg = str(e).strip()
    if isinstance(e, (GenerationError, ValueError)) or type(e).__module__.startswith(("backend", "store")):
        return msg or type(e).__name__
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


@dataclass
class Slot:
    """One output column: a label, the model that fills it, and its prompt."""

    label: str
    model: str
    prompt: str
    status: str = "waiting"  # waiting | loading | warming up | running | repeating | done | error | skipped
    text: str = ""
    token_times: list[float] = field(default_factory=list)  # elapsed_s of each generated token
    prompt_tokens: int | None = None
    info: ModelInfo | None = None
    result: GenerationResult | None = None
    error: str | None = None
    runs: list[GenMetrics] = field(default_factory=list)  # every timed run: the shown one first, then repeats
    version: int = 0  # bumped on every change, so the page redraws only the columns that changed


class CompareJob:
    """Worker threads (one per slot) that stream into a queue; the script thread applies the events."""

    def __init__(self, slots: list[Slot], settings: GenSettings, manager, parallel: bool = False,
                 device: str | None = None, on_finish: Callable[[list[GenerationResult]], list] | None = None,
                 stop_at_line: bool = False, warmup: int = 0, repeats: int = 1):
        """on_finish(results) runs once, in the last worker thread, after every slot ended (so saving does
        not depend on the page still being open); it returns notes [(level, text)], level "info" or
        "warning", that the page shows under the columns. It may read `job.failures` and `job.timed_runs`."""
        self.slots, self.settings, self.manager, self.parallel = slots, settings, manager, parallel
        self.device = device or device_setting()
        self.on_finish = on_finish
        self.stop_at_line, self.warmup, self.repeats = bool(stop_at_line), max(0, int(warmup)), max(1, int(repeats))
        self.failures: dict[str, str] = {}  # model -> sentence, written by workers
        self.timed_runs: dict[int, list[GenMetrics]] = {}  # slot index -> metrics of every timed run
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
            if self.warmup:
                put((i, "status", "warming up"))
                warm = replace(self.settings, max_new_tokens=min(self.settings.max_new_tokens, WARMUP_MAX_NEW))
                for _ in range(self.warmup):
                    gen.generate(slot.prompt, warm, should_stop=self.stop.is_set)
            put((i, "status", "running"))
            text: list[str] = []
            line_stop = self._line_stop(text)
            for ev in gen.stream(slot.prompt, self.settings, should_stop=line_stop):
                if isinstance(ev, GenerationResult):
                    ev = self._line_end(ev)
                    self._final[i] = ev
                    self.timed_runs.setdefault(i, []).append(ev.metrics)
                else:
                    text.append(ev.text)
                put((i, "event", ev))
            for _ in range(self.repeats - 1):
                if self.stop.is_set():
                    break
                put((i, "status", "repeating"))
                text.clear()
                res = None
                for ev in gen.stream(slot.prompt, self.settings, should_stop=line_stop):
                    if isinstance(ev, GenerationResult):
                        res = ev
                    else:
                        text.append(ev.text)
                if res is None or (res.finish_reason == "cancelled" and self.stop.is_set()):
                    break  # a stopped repeat is not a measurement
                self.timed_runs[i].append(res.metrics)
                put((i, "repeat", res.metrics))
        except Exception as e:
            log.info("generation failed for %s", slot.model, exc_info=True)
            self.failures[slot.model] = error_sentence(e)
            put((i, "error", error_sentence(e)))
        finally:
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                self._finish()
            done.set()
            put((i, "end", None))

    def _line_stop(self, text: list[str]) -> Callable[[], bool]:
        """should_stop for one run: Stop pressed, or (stop_at_line) a line break after some text."""
        if not self.stop_at_line:
            return self.stop.is_set

        def should_stop() -> bool:
            return self.stop.is_set() or _ends_line("".join(text))

        return should_stop

    def _line_end(self, result: GenerationResult) -> GenerationResult:
        if self.stop_at_line and result.finish_reason == "cancelled" and not self.stop.is_set() \
                and _ends_line(result.text):
            return replace(result, finish_reason=LINE_END)
        return result

    def _finish(self) -> None:
        results = [self._final[k] for k in sorted(self._final)]
        if self.on_finish is None or not (results or self.failures):
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
                s.result, s.text = payload, payload.text
                s.status = "done" if self.repeats == 1 else "repeating"
                s.prompt_tokens = payload.metrics.prompt_tokens
                s.runs.append(payload.metrics)
            elif kind == "repeat":
                s.runs.append(payload)
            elif kind == "end" and s.status == "repeating":
                s.status = "done"

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads) or not self.events.empty()

    def results(self) -> list[GenerationResult]:
        return [s.result for s in self.slots if s.result is not None]

    def labelled_results(self) -> list[tuple[str, GenerationResult]]:
        """(column label, result) of the finished columns: the label tells two columns of one model apart
        (RAG: "toy-mamba" and "toy-mamba (closed-book)")."""
        return [(s.label, s.result) for s in self.slots if s.result is not None]

    def runs_of_results(self) -> list[list[GenMetrics]]:
        """Every timed run of each finished column, in the order on_finish receives the results (worker side)."""
        return [self.timed_runs.get(k, []) for k in sorted(self._final)]


def _ends_line(text: str) -> bool:
    """A line break after some non-blank text (a leading blank line does not end the answer)."""
    stripped = text.lstrip()
    return "\n" in stripped
