"""The side-by-side streaming runner behind the Arena and the RAG page (no Streamlit here).

`st.write_stream` consumes one iterator, and no Streamlit call is safe from a thread other than the script's.
So a `CompareJob` starts one worker thread per `Slot` (output column); workers only put events on a queue,
and the page's script thread calls `drain()` to apply them to the slots and redraws its placeholders
(`pages.components.streaming.render_job`). `stop` is a `threading.Event` polled by the generators' `should_stop`, so a Stop
click (a rerun that finds the job in `st.session_state`) ends every column and keeps the partial text.
Models run one after the other by default (fair timing on shared cores).

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
from dataclasses import dataclass, field

from backend.generation.interface import GenerationError, GenerationResult, GenSettings, ModelInfo, TokenEvent

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
