"""The generator interface every loaded model implements (real Hugging Face models and the fake backend).

In the spirit of lm-evaluation-harness's `LM` class: a small surface that pages, the CLI and the
experiments call, never a raw `model.generate()`.

    stream(prompt, settings, should_stop) -> iterator of TokenEvent ..., then exactly one GenerationResult
    generate(prompt, settings, should_stop) -> GenerationResult         (consumes stream)
    loglikelihood([(context, continuation), ...]) -> [(logprob_sum, is_greedy), ...]
    count_tokens(text) -> int

Metric definitions follow ../shared/design.md (copied into README "Metrics"):
  ttft_ms   request start -> first generated token id (not first word)
  prefill_ms prompt submitted -> logits of the first new token ready (device synchronised)
  tpot_ms   median time per output token after the first (p90 too)
  decode_tok_s generated tokens after the first / decode time
  peak_mem_bytes GPU max_memory_allocated after reset ("cuda_allocated") or CPU peak RSS ("cpu_rss")
  cache_bytes bytes of KV cache (transformer, "kv") or conv + SSM state (SSM, "ssm_state") at the end; a hybrid
             (Mamba-2 and attention layers, family "hybrid") keeps both in one cache, counted together
`ModelInfo.state_bytes` / `kv_bytes_per_token` split a model's cache for one sequence (measured when loaded):
the conv + SSM state its Mamba layers keep whatever the length, and the K + V its attention layers add per token.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

FAMILIES = ("mamba", "mamba2", "transformer", "hybrid", "fake")
SSM_FAMILIES = ("mamba", "mamba2")  # pure SSMs: no KV cache, no hard context limit (a hybrid's attention layers have both)


class GenerationError(RuntimeError):
    """A generation could not run; the message is a sentence fit for the UI."""


class PromptTooLongError(GenerationError):
    pass


@dataclass
class GenSettings:
    """Decoding settings shared by every column of a comparison (fairness: same settings for all)."""

    max_new_tokens: int = 64
    do_sample: bool = False  # greedy by default
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop_at_eos: bool = True

    def validate(self) -> None:
        if not 1 <= self.max_new_tokens <= 100_000:
            raise ValueError(f"max_new_tokens must be between 1 and 100000, got {self.max_new_tokens}")
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class TokenEvent:
    """One generated token, emitted as soon as its id is known."""

    index: int  # 0 for the first generated token
    token_id: int
    text: str  # decoded text added by this token (may be "" for partial UTF-8 pieces)
    elapsed_s: float  # seconds since the request started


@dataclass
class GenMetrics:
    prompt_tokens: int
    new_tokens: int
    ttft_ms: float | None
    prefill_ms: float | None
    tpot_ms: float | None  # median time per output token after the first
    tpot_p90_ms: float | None
    decode_tok_s: float | None
    total_ms: float
    peak_mem_bytes: int | None
    peak_mem_kind: str  # "cuda_allocated" | "cpu_rss"
    cache_bytes: int | None
    cache_kind: str  # "kv" | "ssm_state" | "ssm_state+kv" (a hybrid) | "none"
    path: str  # kernel / attention path that ran, e.g. "triton", "reference", "sdpa", "eager", "fake"
    device: str  # e.g. "cpu", "NVIDIA H100 80GB HBM3"
    dtype: str  # e.g. "float32", "bfloat16"
    batch: int = 1
    cache_alloc_bytes: int | None = None  # a preallocated (static) cache's whole size; None when it grows

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["cache_alloc_bytes"] is None:  # only static caches have one: rows of growing caches stay as before
            del d["cache_alloc_bytes"]
        return d


@dataclass
class GenerationResult:
    model: str
    family: str
    prompt: str
    text: str
    token_ids: list[int]
    finish_reason: str  # "eos" | "length" | "cancelled"
    metrics: GenMetrics
    settings: GenSettings = field(default_factory=GenSettings)


@dataclass
class ModelInfo:
    name: str
    family: str
    n_params: int
    dtype: str
    device: str
    max_context: int | None  # None: no hard limit (SSMs); the UI still warns beyond training length
    train_context: int | None = None
    path: str = ""  # attention / kernel path this model will use
    placeholder: bool = False  # untrained random weights, labelled as such in the UI
    state_bytes: int | None = None  # conv + SSM state of one sequence, constant in length (0: a transformer)
    kv_bytes_per_token: int | None = None  # K + V one token adds to one sequence's cache (0: a pure SSM)


class Generator(ABC):
    """One loaded model. Generation on one model is serialised by `lock` (shared across sessions)."""

    info: ModelInfo

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @abstractmethod
    def stream(
        self,
        prompt: str,
        settings: GenSettings,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[TokenEvent | GenerationResult]:
        """Yield TokenEvents as tokens are produced, then exactly one GenerationResult.

        `should_stop` is polled between tokens; when it returns True the stream ends promptly with
        finish_reason "cancelled". Raises GenerationError (or a subclass) with a user-facing message.
        """

    def generate(
        self,
        prompt: str,
        settings: GenSettings,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        result = None
        for ev in self.stream(prompt, settings, should_stop):
            if isinstance(ev, GenerationResult):
                result = ev
        assert result is not None, "stream() must end with a GenerationResult"
        return result

    @abstractmethod
    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """For each (context, continuation): sum of log-probs of the continuation tokens, and whether
        greedy decoding would have produced exactly that continuation."""

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...
