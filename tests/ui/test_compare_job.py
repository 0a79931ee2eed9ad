"""The side-by-side runner behind the Arena (backend/generation/compare.py, drawn by pages/components/streaming.py):
threads, queue, Stop, sequential vs parallel."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.generation.compare import CompareJob, Slot
from backend.generation.interface import GenSettings
from backend.models.fake import FakeGenerator
from pages.components.streaming import live_metrics

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "arena.py")


class SlowManager:
    """Stands in for ModelManager: fake generators with a per-token delay; records start order."""

    def __init__(self, delay_s: float):
        self.delay_s, self.started = delay_s, []
        self._lock = threading.Lock()

    def get(self, name, device="auto"):
        with self._lock:
            self.started.append((name, time.perf_counter()))
        return FakeGenerator(name, "mamba" if "mamba" in name else "transformer", delay_s=self.delay_s)


def _wait(job, timeout=30.0):
    deadline = time.monotonic() + timeout
    while job.running and time.monotonic() < deadline:
        job.drain()
        time.sleep(0.01)
    job.drain()
    assert not job.running


def _slots(*names):
    return [Slot(n, n, "Tell me about the river") for n in names]


def test_sequential_runs_one_model_after_the_other():
    mgr = SlowManager(0.002)
    settings = GenSettings(max_new_tokens=20, stop_at_eos=False)
    job = CompareJob(_slots("toy-mamba", "toy-transformer"), settings, mgr, parallel=False).start()
    _wait(job)
    a, b = job.slots
    assert a.result and b.result and a.status == b.status == "done"
    assert a.result.metrics.new_tokens == b.result.metrics.new_tokens == 20
    assert a.text == a.result.text and len(a.token_times) == 20
    # the second model was only requested once the first one had finished generating
    assert mgr.started[1][1] >= mgr.started[0][1] + 19 * 0.002


def test_stop_keeps_the_partial_text_and_skips_models_not_started():
    mgr = SlowManager(0.02)
    settings = GenSettings(max_new_tokens=500, stop_at_eos=False)
    job = CompareJob(_slots("toy-mamba", "toy-transformer"), settings, mgr).start()
    while len(job.slots[0].token_times) < 3:
        job.drain()
        time.sleep(0.01)
    job.stop.set()
    _wait(job)
    first, second = job.slots
    assert first.result.finish_reason == "cancelled"
    assert 3 <= first.result.metrics.new_tokens < 500 and first.text == first.result.text
    assert second.status == "skipped" and second.result is None and "Stopped" in second.error
    assert [r.model for r in job.results()] == ["toy-mamba"]


def test_parallel_runs_both_at_once():
    mgr = SlowManager(0.01)
    job = CompareJob(_slots("toy-mamba", "toy-transformer"), GenSettings(max_new_tokens=30, stop_at_eos=False),
                        mgr, parallel=True).start()
    _wait(job)
    assert abs(mgr.started[1][1] - mgr.started[0][1]) < 0.2  # both requested before either finished (0.3 s)
    assert all(s.result.finish_reason == "length" for s in job.slots)


def test_on_finish_runs_once_after_every_slot_with_the_results_and_its_failure_is_a_note():
    calls = []

    def on_finish(results):
        calls.append([r.model for r in results])
        return [("info", "saved")]

    job = CompareJob(_slots("toy-mamba", "toy-transformer", "toy-mamba2"), GenSettings(max_new_tokens=5),
                        SlowManager(0.001), parallel=True, on_finish=on_finish).start()
    _wait(job)
    assert calls == [["toy-mamba", "toy-transformer", "toy-mamba2"]] and job.notes == [("info", "saved")]

    def broken(results):
        raise OSError("disk full")

    job = CompareJob(_slots("toy-mamba"), GenSettings(max_new_tokens=3), SlowManager(0), on_finish=broken).start()
    _wait(job)
    assert job.notes == [("warning", "Finishing this comparison failed: OSError: disk full")]


def test_live_metrics_while_streaming_and_labels_when_done():
    s = Slot("m", "toy-transformer", "p", status="running", token_times=[0.1, 0.2, 0.3, 0.5])
    live = live_metrics(s)
    assert live["time to first token"] == "100.0 ms" and live["decode tokens/s"] == "7.5"
    assert live["prefill"] == "—"
    gen = FakeGenerator("toy-transformer", "transformer")
    s.result = gen.generate("hello there", GenSettings(max_new_tokens=5, stop_at_eos=False))
    done = live_metrics(s)
    assert done["cache bytes (KV cache)"].endswith("KiB")
    assert "peak RSS of the whole process (app + every loaded model)" in done
    assert done["finish reason"] == "length"


def test_stop_button_reaches_a_running_job_across_a_rerun(arena_env):
    """The Stop click reruns the script; its callback finds the job in session_state and sets its event."""
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    job = CompareJob(_slots("toy-mamba", "toy-transformer"), GenSettings(max_new_tokens=2000, stop_at_eos=False),
                        SlowManager(0.01)).start()
    at.session_state["arena_job"] = job
    t0 = time.monotonic()
    at.button(key="arena_stop").click().run()
    assert not at.exception, at.exception
    assert time.monotonic() - t0 < 15  # 2000 tokens would take 20 s per model
    assert job.stop.is_set()
    assert job.slots[0].result.finish_reason == "cancelled"
    outputs = [c.value for c in at.code if c.language != "bash"]  # not the equivalent command
    assert outputs[0].strip() == job.slots[0].text.strip()
    assert any("stopped: partial output kept" in c.value for c in at.caption)


def test_unknown_model_is_a_sentence_in_its_column_and_the_others_run():
    from backend.models.manager import ModelManager

    job = CompareJob(_slots("no-such-model", "toy-mamba"), GenSettings(max_new_tokens=4),
                        ModelManager(fake=True)).start()
    _wait(job)
    bad, good = job.slots
    assert bad.status == "error" and bad.result is None
    assert bad.error.startswith("There is no model named 'no-such-model'.") and "Traceback" not in bad.error
    assert good.status == "done" and good.result.metrics.new_tokens >= 1


class LineGenerator(FakeGenerator):
    """Answers in lines, like the bundled models on a QA prompt: " Riverford" "\n" " Question:" ... (polls
    should_stop between tokens as the real decode loop does)."""

    PIECES = [" River", "ford", "\n", " Question", ":", " more", "\n", " text"]

    def stream(self, prompt, settings, should_stop=None):
        from backend.generation.interface import GenerationResult, GenMetrics, TokenEvent

        text, finish = "", "length"
        for i, piece in enumerate(self.PIECES[:settings.max_new_tokens]):
            text += piece
            yield TokenEvent(i, i + 1, piece, 0.001 * (i + 1))
            if i + 1 < settings.max_new_tokens and should_stop is not None and should_stop():
                finish = "cancelled"
                break
        n = len(text)
        m = GenMetrics(prompt_tokens=3, new_tokens=n, ttft_ms=1.0, prefill_ms=1.0, tpot_ms=1.0, tpot_p90_ms=1.0,
                       decode_tok_s=1000.0, total_ms=5.0, peak_mem_bytes=1, peak_mem_kind="cpu_rss",
                       cache_bytes=0, cache_kind="kv", path="fake", device="cpu", dtype="float32")
        yield GenerationResult(self.name, self.family, prompt, text, list(range(n)), finish, m, settings)


class LineManager:
    def get(self, name, device="auto"):
        return LineGenerator(name, "transformer")


def test_stop_at_line_ends_each_column_at_its_first_line_break_after_some_text():
    job = CompareJob(_slots("toy-transformer"), GenSettings(max_new_tokens=8), LineManager(), stop_at_line=True).start()
    _wait(job)
    (s,) = job.slots
    assert s.text == " Riverford\n" and s.result.finish_reason == "newline"
    off = CompareJob(_slots("toy-transformer"), GenSettings(max_new_tokens=8), LineManager()).start()
    _wait(off)
    assert off.slots[0].text == "".join(LineGenerator.PIECES) and off.slots[0].result.finish_reason == "length"


def test_a_leading_line_break_does_not_end_the_answer():
    from backend.generation.compare import _ends_line

    assert not _ends_line("\n ") and not _ends_line(" Paris") and _ends_line("\n Paris\n") and _ends_line("a\nb")


def test_warmup_and_repeats_time_every_run_and_keep_the_shown_one():
    class Counting(SlowManager):
        def get(self, name, device="auto"):
            gen = super().get(name, device)
            real = gen.stream
            calls = self.calls = getattr(self, "calls", [])

            def stream(prompt, settings, should_stop=None):
                calls.append(settings.max_new_tokens)
                yield from real(prompt, settings, should_stop)

            gen.stream = stream
            return gen

    mgr = Counting(0.0)
    job = CompareJob(_slots("toy-mamba"), GenSettings(max_new_tokens=20, stop_at_eos=False), mgr, warmup=2,
                     repeats=3).start()
    _wait(job)
    (s,) = job.slots
    assert mgr.calls == [8, 8, 20, 20, 20]  # two short untimed warm-ups, then three timed runs
    assert s.status == "done" and len(s.runs) == 3 and len(job.runs_of_results()[0]) == 3
    assert s.result.metrics is s.runs[0] and s.text == s.result.text


def test_failures_are_kept_for_the_recorder_and_on_finish_runs_when_every_model_failed():
    from backend.models.manager import ModelManager

    seen = []
    job = CompareJob(_slots("no-such-model"), GenSettings(max_new_tokens=4), ModelManager(fake=True),
                     on_finish=lambda results: seen.append(results) or []).start()
    _wait(job)
    assert seen == [[]] and list(job.failures) == ["no-such-model"]
    assert job.failures["no-such-model"].startswith("There is no model named")
