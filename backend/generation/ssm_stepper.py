"""Decode stepper for Mamba / Mamba-2 on a GPU: static conv + SSM state buffers and the single-token step
captured once in a CUDA graph, then replayed for every generated token.

Why: at batch 1 a 130M SSM reads its weights in ~0.1 ms per token on an H100, but an eager step launches
~10 kernels per layer from Python; replaying one graph removes that overhead (anchors: HF `generate()`
decodes such models at ~30 tok/s).

Shapes (B batch, L prompt length, V vocab; per layer: C conv channels, K conv width, and the SSM state
(B, D, N) for Mamba-1 or (B, H, P, N) for Mamba-2):
    prefill(input_ids[B, L]) -> logits[B, V]
        runs the model's embeddings, blocks and head with `StaticSSMCache`, whose per-layer conv state
        (B, C, K) and fp32 SSM state live in buffers allocated once per batch size; a new prefill copies
        into the same buffers, so a captured graph stays valid.
    step(token_ids[B]) -> logits[B, V]
        copies the ids into the graph's static input and replays it. Inside: embeddings -> per block a
        fused residual-add + RMSNorm kernel and the mixer (patched by `backend.generation.ssm_fast`: decode branch,
        causal_conv1d_update + selective_state_update updating the static buffers in place, no copies)
        -> norm_f -> lm_head. The blocks' own forward is not called: the stepper runs the same math with
        the norm fused (fewer kernels per token, which is what bounds decode at batch 1).
On CPU, or with use_cuda_graph=False, the same step runs eagerly (that is how the tests check it); on the CPU
path a step goes through `backend/generation/cpu_decode.py`'s loop (each block's fused kernels bound to its
weights and state buffers once per prefill, the same math without the per-block Python calls) where the model is
fp32 and its mixers are ones the bound kernels take, else through the same `_run`; a CPU prefill likewise goes
through `backend/generation/cpu_prefill.py` (each layer's kernels bound once per model).
`register()` plugs the factory into `backend.generation.steppers` for SSM families on CUDA devices, and on
the CPU when the CPU fast path runs.

Prefill in batch chunks: a prompt batch of B x L tokens is run `rows = max(1, prefill_tokens // L)`
sequences at a time, each chunk writing its rows of the state buffers (`_Rows`), so prefill's transient
activations are those of one chunk (<= prefill_tokens tokens) whatever B is: peak memory = weights + the
state of all B sequences + one chunk's activations. Without it, prefill activations (not the 2.5 MiB state
per sequence of mamba-130m) decided the largest batch of the paper setting. The last position's logits
of every chunk are concatenated; the result equals one unchunked prefill (the tests check it).
"""

from __future__ import annotations

import logging

import torch

from backend.generation import cpu_decode, cpu_prefill, ssm_fast
from kernels import dispatch

log = logging.getLogger(__name__)


class StaticSSMCache:
    """Per-layer conv and recurrent state in fixed buffers; speaks the cache API `backend.generation.ssm_fast` reads
    (the transformers 5.24 names: get_conv_state, get_recurrent_state, is_recording_past, update_*)."""
    def __init__(self, n_layers: int) -> None:
        self.conv: list[torch.Tensor | None] = [None] * n_layers
        self.ssm: list[torch.Tensor | None] = [None] * n_layers
        self.ready = [False] * n_layers

    def reset(self) -> None:
        self.ready = [False] * len(self.ready)

    def get_conv_state(self, idx: int, state_idx: int = 0):
        return self.conv[idx] if self.ready[idx] else None

    def get_recurrent_state(self, idx: int, state_idx: int = 0):
        return self.ssm[idx] if self.ready[idx] else None

    def is_recording_past(self, idx: int) -> bool:
        return False

    def has_previous_state(self, idx: int | None = None) -> bool:
        return all(self.ready) if idx is None else self.ready[idx]

    def update_conv_state(self, x: torch.Tensor, idx: int, conv_kernel_size: int, **kwargs) -> torch.Tensor:
        """Prefill only (a fresh sequence): keep the last K inputs of x (B, C, L), zero-padded on the left."""
        K = conv_kernel_size
        buf = self.conv[idx]
        shape = (*x.shape[:2], K)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype or buf.device != x.device:
            buf = self.conv[idx] = torch.zeros(shape, dtype=x.dtype, device=x.device)
        tail = x[..., -K:]
        buf.zero_()
        buf[..., K - tail.shape[-1]:].copy_(tail)
        return x

    def update_recurrent_state(self, state: torch.Tensor, idx: int, **kwargs) -> torch.Tensor:
        buf = self.ssm[idx]
        if buf is None or buf.shape != state.shape or buf.dtype != state.dtype or buf.device != state.device:
            buf = self.ssm[idx] = torch.empty_like(state)
        buf.copy_(state)
        self.ready[idx] = True
        return buf

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (*self.conv, *self.ssm) if t is not None]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


class _Rows:
    """Rows [r0, r1) of a `StaticSSMCache` whose buffers hold `batch` sequences, speaking the same API: a
    batch chunk's prefill writes its rows of the full-batch buffers (allocated at the first chunk)."""
    def __init__(self, cache: StaticSSMCache, batch: int, r0: int, r1: int) -> None:
        self.cache, self.batch, self.r0, self.r1 = cache, batch, r0, r1

    def get_conv_state(self, idx: int, state_idx: int = 0):
        return None  # a prefill starts fresh sequences

    get_recurrent_state = get_conv_state

    def is_recording_past(self, idx: int) -> bool:
        return False

    def _full(self, bufs: list, idx: int, like: torch.Tensor) -> torch.Tensor:
        shape = (self.batch, *like.shape[1:])
        buf = bufs[idx]
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = bufs[idx] = torch.zeros(shape, dtype=like.dtype, device=like.device)
        return buf

    def update_conv_state(self, x: torch.Tensor, idx: int, conv_kernel_size: int, **kwargs) -> torch.Tensor:
        K = conv_kernel_size
        rows = self._full(self.cache.conv, idx, x[..., :1].expand(*x.shape[:2], K))[self.r0:self.r1]
        tail = x[..., -K:]
        rows.zero_()
        rows[..., K - tail.shape[-1]:].copy_(tail)
        return x

    def update_recurrent_state(self, state: torch.Tensor, idx: int, **kwargs) -> torch.Tensor:
        self._full(self.cache.ssm, idx, state)[self.r0:self.r1].copy_(state)
        if self.r1 == self.batch:
            self.cache.ready[idx] = True
        return state


class SSMGraphStepper:
    """Static-state stepper for HF Mamba / Mamba-2 with our kernels (see the module docstring)."""
    cache_kind = "ssm_state"
    PREFILL_TOKENS = 1 << 16  # tokens per prefill chunk (B x L above this is run in batch chunks)

    def __init__(self, model, family: str, use_cuda_graph: bool | None = None,
                 prefill_tokens: int | None = None) -> None:
        self.prefill_tokens = int(prefill_tokens or self.PREFILL_TOKENS)
        self.model = model
        self.family = family
        self.backbone = model.backbone
        self.device = next(model.parameters()).device
        kernel_path = ssm_fast.enable(model)
        self.use_graph = (self.device.type == "cuda") if use_cuda_graph is None else use_cuda_graph
        self.path = kernel_path + ("+cudagraph" if self.use_graph else "")
        blocks = list(self.backbone.layers)
        self.cache = StaticSSMCache(len(blocks))
        self._graph = None
        self._ids = None  # static (B, 1) input of the graph
        self._logits = None  # static (B, V) output of the graph
        self._loop = None  # the CPU decode loop of the current sequences (None: not bound yet; False: declined)
        self._prefill = None  # the CPU prefill, bound once per model (None: not bound yet; False: declined)

    def _run(self, input_ids: torch.Tensor, cache=None) -> torch.Tensor:
        """The backbone's blocks with each block's residual add + RMSNorm fused into one kernel (the same
        math and roundings as MambaBlock / Mamba2Block: residual = input (fp32 if residual_in_fp32),
        out = residual + mixer(norm(input.to(norm dtype))))."""
        cache = self.cache if cache is None else cache
        h = self.backbone.embeddings(input_ids)
        out, resid = h, None
        for block in self.backbone.layers:
            normed, resid = dispatch.rms_norm(out, block.norm.weight, block.norm.variance_epsilon, residual=resid,
                                              residual_fp32=bool(block.residual_in_fp32), round_input=True)
            out = block.mixer(normed, cache=cache)
        h = self.backbone.norm_f(resid + out)
        return self.model.lm_head(h[:, -1:, :].to(self.model.lm_head.weight.dtype))[:, -1, :]

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        input_ids = input_ids.to(self.device)
        if self._ids is not None and self._ids.shape[0] != input_ids.shape[0]:
            self._graph = None  # batch size changed: new buffers, new graph
            self.cache = StaticSSMCache(len(self.cache.ready))
        self.cache.reset()
        self._loop = None  # a prefill may reallocate the state buffers the loop was bound to
        batch, length = input_ids.shape
        rows = self.prefill_rows(batch, length)
        run = self._prefill_fn()
        if rows >= batch:
            return run(input_ids, self.cache)
        return torch.cat([run(input_ids[r0:r0 + rows], _Rows(self.cache, batch, r0, min(batch, r0 + rows)))
                          for r0 in range(0, batch, rows)])

    def _prefill_fn(self):
        """The CPU path's bound prefill (`cpu_prefill`, rebound when a parameter it copied changed) where it
        applies, else `_run`."""
        if self.device.type == "cpu" and not self.use_graph and dispatch.path_for(self.device) == "cpu-chunked":
            if self._prefill is None or (self._prefill and self._prefill.stale()):
                self._prefill = cpu_prefill.build(self.model, self.family) or False
            if self._prefill:
                return self._prefill
        return self._run

    def prefill_rows(self, batch: int, length: int) -> int:
        """Sequences per prefill chunk for a [batch, length] prompt (see the module docstring)."""
        return max(1, min(batch, self.prefill_tokens // max(1, length)))

    @torch.inference_mode()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        ids = token_ids.to(self.device).view(-1, 1)
        if not self.use_graph:
            if self.device.type == "cpu":  # the same step with each block's kernels bound once (cpu_decode)
                if self._loop is None or (self._loop and self._loop.batch != ids.shape[0]):
                    self._loop = cpu_decode.build(self.model, self.family, self.cache, ids.shape[0]) or False
                if self._loop:
                    return self._loop(ids)
            return self._run(ids)
        if self._graph is None:
            self._capture(ids)
        self._ids.copy_(ids)
        self._graph.replay()
        return self._logits.clone()

    def _capture(self, ids: torch.Tensor) -> None:
        """Warm up (Triton compiles its kernels) on a side stream with the state saved and restored, then
        capture one step. Capture records kernels without running them, so the state is untouched."""
        self._ids = ids.clone()
        saved = [t.clone() for t in self.cache.tensors()]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._run(self._ids)
        torch.cuda.current_stream().wait_stream(stream)
        for t, s in zip(self.cache.tensors(), saved, strict=True):
            t.copy_(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._logits = self._run(self._ids)
        self._graph = graph

    def cache_bytes(self) -> int:
        return self.cache.nbytes()

    def release(self) -> None:
        """Keep the buffers and graph (reused by the next prefill of this batch size)."""

    close = release


def factory(model, family: str, device) -> SSMGraphStepper | None:
    """`backend.generation.steppers` factory: Mamba / Mamba-2 models on a CUDA (or ROCm) device, or on the CPU
    when the CPU fast path runs (`kernels.dispatch` path "cpu-chunked": the same static-state step, eager,
    without Hugging Face's per-call cache bookkeeping); declines the rest. A hybrid (family "hybrid", e.g.
    Bamba) is declined even when its Mamba-2 layers run our kernels: its attention layers need a KV cache and
    its blocks are not `backbone.layers` of norm + mixer, so the generic eager stepper runs it on the model's
    own cache (our kernels still serve its Mamba layers there)."""
    if family not in ("mamba", "mamba2"):  # "hybrid", "transformer": not a pure SSM
        return None
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    on_gpu = dev.type == "cuda" and torch.cuda.is_available()
    # on CPU only where the loader put the model on the fast path (ssm_fast.enable sets arena_path): a model left
    # on Hugging Face's own path (the fallback after a failed warm-up, "hf-torch") keeps HF's eager stepper
    cpu_fast = dev.type == "cpu" and getattr(model, "arena_path", None) == "cpu-chunked"
    if not on_gpu and not cpu_fast:
        return None
    if not hasattr(model, "backbone") or not hasattr(model, "lm_head"):
        return None
    try:
        return SSMGraphStepper(model, family)
    except Exception as e:  # fall back to the eager stepper, but say why
        log.warning("SSM graph stepper unavailable (%s); using the eager stepper", e)
        return None


def register() -> bool:
    """Register the factory with `backend.generation.steppers`; False when that module is not importable."""
    try:
        from backend.generation.steppers import register_stepper
    except ImportError:
        return False
    register_stepper(factory)
    return True
