"""The CPU prefill of the static-state SSM stepper (`backend/generation/ssm_stepper.py`): a prompt through every
block with each layer's kernels bound to its weights once per model (`kernels/cpu_prefill.py`), writing each
layer's conv and SSM state into the stepper's cache.

Shapes (B batch, L prompt length, W hidden size, V vocab):
    build(model, family) -> CPUPrefill | None
        None when the model is not one the bound kernels take (not fp32 on the CPU path, another activation,
        an in_proj with extra MLP columns, Mamba-1 channels not a multiple of 16): the stepper then runs its
        generic `_run` through the mixers' forward (`ssm_fast`).
    prefill(ids [B, L], cache) -> logits [B, V] of the last position
        embeddings -> per block: residual add + RMSNorm, in_proj, the bound layer (conv, scan or SSD
        recurrence, gate or gated norm), cache.update_conv_state / update_recurrent_state, out_proj
        -> residual add + norm_f of the last position -> lm_head.
The same math and kernels as `SSMGraphStepper._run` (the tests compare logits and states); fp32 only, where
every rounding of the block (residual_in_fp32, round_input) is the identity. `stale()` says whether a parameter
the bound copies were made from has changed since (in-place updates, e.g. training in the same process).

A hybrid (Hugging Face `BambaForCausalLM`, run by `steppers.EagerStepper`):
    build_hybrid(model) -> HybridPrefill | None   (None: not fp32 on the CPU path, an MLP activation other
        than SiLU, a layer of another kind, a Mamba-2 layer the bound kernels do not take)
    prefill(ids [B, L]) -> (logits [B, V] of the last position, the model's own cache)
        a new `DynamicCache(config=...)`; per layer: residual add + RMSNorm, the Mamba-2 layer bound as above
        (its states written through the cache API) or the attention layer's own module on the cache (RoPE at
        positions 0..L-1, causal SDPA: prompts are not padded here), residual add + RMSNorm, the MLP.

Why: see `kernels/cpu_prefill.py` (the per-layer Python around the kernels, decided once here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.generation import ssm_fast
from backend.generation.cpu_decode import _fp32_cpu, _linear, hybrid_layers
from kernels import dispatch


def _mamba1(mixer, bind):
    if mixer.activation != "silu" or mixer.in_proj.out_features != 2 * mixer.intermediate_size:
        return None
    A, D, dt_bias = ssm_fast._ssm_params(mixer, mixer.dt_proj.bias)
    return bind(ssm_fast._conv_weight(mixer), mixer.conv1d.bias, mixer.x_proj.weight, mixer.dt_proj.weight,
                dt_bias, A, D)


def _mamba2(mixer, bind):
    I, H, P, G, N = (mixer.intermediate_size, mixer.num_heads, mixer.head_dim, mixer.n_groups,
                     mixer.ssm_state_size)
    A, D, dt_bias = ssm_fast._ssm_params(mixer, mixer.dt_bias)
    if mixer.activation not in ("silu", "swish") or dt_bias is None or H * P != I \
            or mixer.in_proj.out_features != 2 * I + 2 * G * N + H:
        return None
    group = getattr(mixer.norm, "group_size", None) or I
    return bind(ssm_fast._conv_weight(mixer), mixer.conv1d.bias, dt_bias, A, D, mixer.time_step_limit,
                mixer.norm.weight, mixer.norm.variance_epsilon, group, H, P, G, N)


def _derived_from(model) -> list[torch.Tensor]:
    """The parameters the bindings copied (A, D, biases, conv weights); the linears' weights are used in place."""
    return [p for name, p in model.named_parameters()
            if name.endswith(("A_log", ".D", "dt_bias", "dt_proj.bias", "conv1d.weight", "conv1d.bias"))]


def _key(params: list[torch.Tensor]) -> tuple:
    return tuple((p._version, p.data_ptr()) for p in params)


class _Bound:
    """What both bound prefills share: the parameters their copies were made from, to say when they are stale."""

    def __init__(self, model) -> None:
        self.model = model
        self._params = _derived_from(model)
        self._key = _key(self._params)

    def stale(self) -> bool:
        return _key(self._params) != self._key


def _mamba_layer(mixer: tuple, normed: torch.Tensor, cache, idx: int, conv_width: int) -> torch.Tensor:
    """in_proj -> the bound layer (its conv and SSM state written through the cache API) -> out_proj."""
    (w_in, b_in), layer, (w_out, b_out) = mixer
    y, conv_in, state = layer(F.linear(normed, w_in, b_in))
    cache.update_conv_state(conv_in, idx, conv_kernel_size=conv_width)
    cache.update_recurrent_state(state, idx)
    return F.linear(y, w_out, b_out)


class CPUPrefill(_Bound):
    """Bound blocks of one model (see the module docstring)."""

    def __init__(self, model, blocks: list, conv_width: int) -> None:
        super().__init__(model)
        self.backbone = model.backbone
        self.blocks = blocks  # (norm, (in_proj (w, b), layer, out_proj (w, b))) per block
        self.conv_width = conv_width

    def __call__(self, ids: torch.Tensor, cache) -> torch.Tensor:
        batch, length = ids.shape
        out = F.embedding(ids, self.backbone.embeddings.weight)  # [B, L, W]
        rows, width = batch * length, out.shape[-1]
        normed = torch.empty(batch, length, width, dtype=torch.float32)
        resid = torch.empty(batch, length, width, dtype=torch.float32)
        for idx, (norm, mixer) in enumerate(self.blocks):
            norm(out.reshape(rows, width), resid.view(rows, width) if idx else None, normed.view(rows, width),
                 resid.view(rows, width))
            out = _mamba_layer(mixer, normed, cache, idx, self.conv_width)
        last = self.backbone.norm_f(resid[:, -1:] + out[:, -1:])
        return self.model.lm_head(last)[:, -1, :]


def build(model, family: str) -> CPUPrefill | None:
    """Bind `model`'s blocks (see the module docstring), or None where the bound prefill does not apply."""
    if family not in ("mamba", "mamba2") or not _fp32_cpu(model):
        return None
    device = next(model.parameters()).device
    bind_layer = dispatch.fused("mamba1_prefill_bind" if family == "mamba" else "mamba2_prefill_bind", device)
    bind_norm = dispatch.fused("block_norm_bind", device)
    if bind_layer is None or bind_norm is None:
        return None
    blocks = []
    for block in model.backbone.layers:
        mixer = block.mixer
        layer = (_mamba1 if family == "mamba" else _mamba2)(mixer, bind_layer)
        if layer is None:
            return None
        blocks.append((bind_norm(block.norm.weight, block.norm.variance_epsilon),
                       (_linear(mixer.in_proj), layer, _linear(mixer.out_proj))))
    return CPUPrefill(model, blocks, model.backbone.layers[0].mixer.conv_kernel_size)


class HybridPrefill(_Bound):
    """Bound layers of one Bamba hybrid (see the module docstring)."""

    def __init__(self, model, layers: list, conv_width: int, cache_kw: str) -> None:
        super().__init__(model)
        self.inner = model.model
        self.layers = layers  # (kind, in_norm, mixer, ff_norm, mlp) per layer
        self.conv_width = conv_width
        self.cache_kw = cache_kw

    def __call__(self, ids: torch.Tensor):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        batch, length = ids.shape
        out = F.embedding(ids, self.inner.embed_tokens.weight)
        rows, width = batch * length, out.shape[-1]
        normed = torch.empty(batch, length, width, dtype=torch.float32)
        resid = torch.empty(batch, length, width, dtype=torch.float32)
        rope = None
        for idx, (kind, in_norm, mixer, ff_norm, ((wg, bg), (wu, bu), (wd, bd))) in enumerate(self.layers):
            in_norm(out.reshape(rows, width), resid.view(rows, width) if idx else None, normed.view(rows, width),
                    resid.view(rows, width))
            if kind == "mamba":
                y = _mamba_layer(mixer, normed, cache, idx, self.conv_width)
            else:
                if rope is None:  # positions 0..L-1 for every attention layer
                    rope = self.inner.rotary_emb(normed, torch.arange(length).expand(batch, length))
                y = mixer(hidden_states=normed, position_embeddings=rope, attention_mask=None,
                          **{self.cache_kw: cache})[0]
            ff_norm(y.reshape(rows, width), resid.view(rows, width), normed.view(rows, width), resid.view(rows, width))
            out = F.linear(F.silu(F.linear(normed, wg, bg)) * F.linear(normed, wu, bu), wd, bd)
        last = self.inner.final_layernorm(resid[:, -1:] + out[:, -1:])
        return self.model.lm_head(last)[:, -1, :], cache


def build_hybrid(model) -> HybridPrefill | None:
    """Bind a Bamba hybrid's layers (see the module docstring), or None where the bound prefill does not apply."""
    if not _fp32_cpu(model):
        return None
    device = next(model.parameters()).device
    bind_layer = dispatch.fused("mamba2_prefill_bind", device)
    bind_norm = dispatch.fused("block_norm_bind", device)
    if bind_layer is None or bind_norm is None:
        return None
    found = hybrid_layers(model, lambda idx, mixer: _mamba2(mixer, bind_layer),
                          lambda norm: bind_norm(norm.weight, norm.variance_epsilon))
    if found is None:
        return None
    width = next((layer.mamba.conv_kernel_size for layer in model.model.layers
                  if getattr(layer, "mamba", None) is not None), 4)
    return HybridPrefill(model, found[0], width, found[1])
