"""Steppers: the model-specific half of our one decode loop (`backend.generation.decode`).

A stepper owns one sequence's cache and exposes (B batch, L prompt length, V vocab):
    prefill(input_ids[B, L]) -> logits[B, V]   starts a new sequence (drops any previous state)
    step(token_ids[B])       -> logits[B, V]   feeds one token per sequence
    cache_bytes() -> int                       bytes of the cache tensors right now
    cache_kind: "kv" | "ssm_state" | "ssm_state+kv" (a hybrid) | "none";  path: what ran (e.g. "sdpa", "hf-torch", "triton+cudagraph")

`EagerStepper` works for any Hugging Face causal LM (Mamba, Mamba-2, Llama, GPT-NeoX, ...) with the cache
the model creates itself (a DynamicCache in transformers 5.x: KV layers for attention, conv + recurrent
state layers for Mamba / Mamba-2). The cache keyword is read from the model's forward signature:
`cache` (transformers 5.24), `past_key_values` / `cache_params` (5.17), plus `cache_position` where the
signature still takes it.

Faster steppers (static caches, CUDA graphs) plug in with `register_stepper(factory)`; a factory is
`(model, family, device) -> Stepper | None` and the most recently registered one that accepts wins.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from backend.generation.interface import SSM_FAMILIES
from backend.generation.metrics import tensor_bytes


@runtime_checkable
class Stepper(Protocol):
    cache_kind: str
    path: str

    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor: ...

    def step(self, token_ids: torch.Tensor) -> torch.Tensor: ...

    def cache_bytes(self) -> int: ...


StepperFactory = Callable[[object, str, object], "Stepper | None"]
_FACTORIES: list[StepperFactory] = []
_FACTORIES_LOCK = threading.Lock()


def register_stepper(factory: StepperFactory) -> None:
    """Add a factory (idempotent). Later registrations are tried first."""
    with _FACTORIES_LOCK:
        if factory not in _FACTORIES:
            _FACTORIES.append(factory)


def unregister_stepper(factory: StepperFactory) -> None:
    with _FACTORIES_LOCK:
        if factory in _FACTORIES:
            _FACTORIES.remove(factory)


def default_path(model, family: str) -> str:
    """The path an eager run takes: set by loading as `model.arena_path`, else attention impl / "hf-torch"."""
    path = getattr(model, "arena_path", None)
    if path:
        return path
    if family in SSM_FAMILIES:
        return "hf-torch"
    return getattr(model.config, "_attn_implementation", None) or "eager"


def make_stepper(model, family: str, device) -> Stepper:
    """The first registered factory that accepts (newest first), else an EagerStepper."""
    with _FACTORIES_LOCK:
        factories = list(reversed(_FACTORIES))
    for factory in factories:
        stepper = factory(model, family, device)
        if stepper is not None:
            return stepper
    return EagerStepper(model, family, device)


class EagerStepper:
    """Prefill then one eager forward per token on the model's own cache."""

    def __init__(self, model, family: str, device=None) -> None:
        self.model = model
        self.family = family
        self.device = next(model.parameters()).device
        # a hybrid keeps both: its Mamba layers' conv + SSM state and its attention layers' KV cache
        self.cache_kind = "ssm_state" if family in SSM_FAMILIES else "ssm_state+kv" if family == "hybrid" else "kv"
        self.path = default_path(model, family)
        params = inspect.signature(model.forward).parameters
        self._cache_kw = next((k for k in ("cache", "past_key_values", "cache_params") if k in params), None)
        if self._cache_kw is None:
            raise TypeError(f"{type(model).__name__}.forward takes no cache argument; cannot decode step by step.")
        self._pass_position = "cache_position" in params
        # Bamba (and some other hybrids) take RoPE positions from position_ids only, 0.. otherwise: a decode
        # step without them would rotate every new token as if it stood at position 0.
        self._pass_position_ids = "position_ids" in params
        self._logits_kw = "logits_to_keep" in params
        self.cache = None
        self.pos = 0
        self._loop = None  # a hybrid's CPU decode loop for the current sequences (None: not bound; False: declined)
        self._prefill = None  # a hybrid's CPU prefill, bound once per model (None: not bound; False: declined)
        self._bound_cpu = False  # whether the current sequences run the hybrid's bound CPU paths (set per prefill)

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        kwargs = {"use_cache": True}
        if self.cache is not None:
            kwargs[self._cache_kw] = self.cache
        if self._pass_position:
            kwargs["cache_position"] = torch.arange(self.pos, self.pos + ids.shape[1], device=self.device)
        if self._pass_position_ids:
            kwargs["position_ids"] = torch.arange(self.pos, self.pos + ids.shape[1],
                                                  device=self.device).expand(ids.shape[0], -1)
        if self._logits_kw:
            kwargs["logits_to_keep"] = 1  # never materialise [B, L, V] logits for a long prompt
        out = self.model(input_ids=ids, **kwargs)
        cache = next((getattr(out, k) for k in ("cache", "past_key_values", "cache_params")
                      if getattr(out, k, None) is not None), None)
        if cache is None:
            raise RuntimeError(f"{type(self.model).__name__} returned no cache with use_cache=True.")
        self.cache = cache
        self.pos += ids.shape[1]
        return out.logits[:, -1, :]

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.cache, self.pos, self._loop = None, 0, None
        ids = input_ids.to(self.device)
        self._bound_cpu = self.family == "hybrid" and self.device.type == "cpu" and self._fast_cpu()
        prefill = self._hybrid_prefill() if self._bound_cpu else None
        if prefill:
            logits, self.cache = prefill(ids)
            self.pos = ids.shape[1]
            return logits
        return self._forward(ids)

    def _fast_cpu(self) -> bool:
        """Whether this model's Mamba layers run our CPU kernels now (ssm_fast enabled, the cpu-chunked path):
        only then do the bound prefill and decode loop stand in for the model's forward."""
        from backend.generation import ssm_fast
        from kernels import dispatch

        return ssm_fast.is_enabled(self.model) and dispatch.path_for(self.device) == "cpu-chunked"

    def _hybrid_prefill(self):
        """A hybrid's bound CPU prefill (backend/generation/cpu_prefill.py; rebound when a parameter it copied
        changed), or None: the model's forward."""
        from backend.generation import cpu_prefill

        if self._prefill is None or (self._prefill and self._prefill.stale()):
            self._prefill = cpu_prefill.build_hybrid(self.model) or False
        return self._prefill or None

    @torch.inference_mode()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        ids = token_ids.to(self.device).view(-1, 1)
        if self._bound_cpu and self.cache is not None:  # decided at the prefill, not per token
            # on the CPU path a hybrid's step runs backend/generation/cpu_decode.py's loop on the same cache
            if self._loop is None or (self._loop and self._loop.batch != ids.shape[0]):
                from backend.generation import cpu_decode

                self._loop = cpu_decode.build_hybrid(self.model, self.cache, ids.shape[0]) or False
            if self._loop:
                logits = self._loop(ids, self.pos)
                self.pos += 1
                return logits
        return self._forward(ids)

    def cache_bytes(self) -> int:
        return tensor_bytes(self.cache) if self.cache is not None else 0

    def release(self) -> None:
        """Drop the cache once a generation is over (the loop reads cache_bytes() first)."""
        self.cache, self._loop, self._bound_cpu = None, None, False

    close = release
