"""A fake backend with the real interface: no torch model, instant, deterministic.

Used when `SSM_ARENA_FAKE=1` (UI tests) so pages can be exercised without loading models. It is honest
about being fake: `ModelInfo.path` and `GenMetrics.path` are "fake"; the family is the one it imitates.
Text is a deterministic function of (model name, prompt), plus the seed when sampling. Metrics are computed
from its own timing (the optional per-token delay), with the same definitions as the real loop.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator

import psutil

from backend.generation.interface import (
    SSM_FAMILIES,
    GenerationError,
    GenerationResult,
    Generator,
    GenMetrics,
    GenSettings,
    ModelInfo,
    PromptTooLongError,
    TokenEvent,
)
from backend.generation.metrics import percentile

_WORDS = (
    "the state space model reads each token once and keeps a fixed size summary while the transformer "
    "attends over every earlier token so its cache grows with the context length a cat sat on the mat "
    "two plus three is five the river flows north past the old mill seven robots sorted red blue boxes"
).split()
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

FAKE_LAYERS, FAKE_HIDDEN, FAKE_STATE = 4, 256, 16
FAKE_MAX_CONTEXT = 2048


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


class FakeGenerator(Generator):
    def __init__(self, name: str, family: str, delay_s: float = 0.0, placeholder: bool = False) -> None:
        super().__init__()
        self.name, self.family, self.delay_s = name, family, float(delay_s)
        ssm = family in SSM_FAMILIES
        self.info = ModelInfo(
            name=name, family=family, n_params=1_000_000, dtype="float32", device="cpu",
            max_context=None if ssm else FAKE_MAX_CONTEXT, train_context=FAKE_MAX_CONTEXT, path="fake",
            placeholder=placeholder,
        )

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN_RE.findall(text))

    def _cache_bytes(self, seq_len: int) -> tuple[int, str]:
        if self.family in SSM_FAMILIES:  # conv state (kernel 4) + SSM state, fp32: constant in length
            return FAKE_LAYERS * 2 * FAKE_HIDDEN * (4 + FAKE_STATE) * 4, "ssm_state"
        return 2 * FAKE_LAYERS * FAKE_HIDDEN * seq_len * 4, "kv"  # K and V per layer, fp32

    def stream(
        self, prompt: str, settings: GenSettings, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[TokenEvent | GenerationResult]:
        settings.validate()
        if not prompt.strip():
            raise GenerationError("The prompt is empty. Type some text to continue.")
        n_prompt = self.count_tokens(prompt)
        if self.info.max_context and n_prompt + settings.max_new_tokens > self.info.max_context:
            raise PromptTooLongError(
                f"The prompt is {n_prompt} tokens and {settings.max_new_tokens} new tokens were asked for, but "
                f"'{self.name}' handles at most {self.info.max_context} positions. Shorten the prompt or lower "
                "max new tokens.")
        with self.lock:
            yield from self._run(prompt, n_prompt, settings, should_stop)

    def _run(self, prompt, n_prompt, settings, should_stop):
        rng = _rng(self.name, prompt, settings.seed if settings.do_sample else "greedy",
                   settings.temperature if settings.do_sample else "")
        proc = psutil.Process()
        t_req = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)  # "prefill"
        t_prefill = time.perf_counter()
        stamps, ids, pieces, peak = [], [], [], proc.memory_info().rss
        finish = "length"
        for i in range(settings.max_new_tokens):
            if should_stop is not None and should_stop():
                finish = "cancelled"
                break
            if i and self.delay_s:
                time.sleep(self.delay_s)
            if settings.stop_at_eos and i >= 8 and rng.random() < 0.03:
                stamps.append(time.perf_counter())
                ids.append(0)
                finish = "eos"
                yield TokenEvent(i, 0, "", time.perf_counter() - t_req)
                break
            k = rng.randrange(len(_WORDS))
            piece = (" " if i or not prompt.endswith(" ") else "") + _WORDS[k]
            stamps.append(time.perf_counter())
            ids.append(k + 1)
            pieces.append(piece)
            peak = max(peak, proc.memory_info().rss)
            yield TokenEvent(i, k + 1, piece, time.perf_counter() - t_req)
        t_end = time.perf_counter()
        gaps = [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:], strict=False)]
        decode_s = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        cache, kind = self._cache_bytes(n_prompt + len(ids))
        metrics = GenMetrics(
            prompt_tokens=n_prompt, new_tokens=len(ids),
            ttft_ms=(stamps[0] - t_req) * 1e3 if stamps else None,
            prefill_ms=(t_prefill - t_req) * 1e3,
            tpot_ms=percentile(gaps, 50), tpot_p90_ms=percentile(gaps, 90),
            decode_tok_s=(len(stamps) - 1) / decode_s if decode_s > 0 else None,
            total_ms=(t_end - t_req) * 1e3, peak_mem_bytes=peak, peak_mem_kind="cpu_rss",
            cache_bytes=cache, cache_kind=kind, path="fake", device="cpu", dtype="float32",
        )
        yield GenerationResult(self.name, self.family, prompt, "".join(pieces), ids, finish, metrics, settings)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        out = []
        for context, continuation in requests:
            rng = _rng(self.name, context, continuation)
            n = max(1, self.count_tokens(continuation))
            out.append((-sum(rng.uniform(0.2, 4.0) for _ in range(n)), rng.random() < 0.25))
        return out
