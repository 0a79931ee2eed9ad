"""The CPU decode loop of the static-state SSM stepper (`backend/generation/ssm_stepper.py`): one token through
every block with each block's fused kernels bound to its weights and state buffers once per sequence.

Shapes (B batch, H hidden size, V vocab; per block as in kernels/cpu_mamba1_step.py / cpu_mamba2_step.py):
    build(model, family, cache, batch) -> CPUDecodeLoop | None
        None when the model is not one the bound kernels take (not fp32 on the CPU path, another activation,
        Mamba-2 without dt_bias or with a per-channel D, state buffers missing or of another batch): the
        stepper then runs its generic `_run`.
    loop(ids [B, 1]) -> logits [B, V]
        embeddings -> per block: residual add + RMSNorm, in_proj, the fused step (conv update, state update,
        gate; Mamba-2's gated norm), out_proj -> residual add + norm_f -> lm_head.
The same math and kernels as `SSMGraphStepper._run` through `ssm_fast`'s fused decode branch (the tests
compare the two token by token); fp32 only, where every rounding of the block (residual_in_fp32,
round_input) is the identity.

Why: at batch 1 a toy model's step is ~33 small matmuls that read the weights plus, per block, ~40 Python-level
calls (module __call__, cache lookups, parameter caches, casts, `.numpy()` conversions): measured on the 2-core
CPU, toy-mamba at a 512-token context, 7.5 ms a token through `_run` against 4.6 ms through this loop.

A hybrid (Hugging Face `BambaForCausalLM`, decoded by `steppers.EagerStepper` on its own cache):
    build_hybrid(model, cache, batch) -> HybridDecodeLoop | None   (None: not fp32 on the CPU path, an MLP
        activation other than SiLU, a layer of another kind, Mamba states missing or of another batch)
    loop(ids [B, 1], pos) -> logits [B, V]
        embeddings -> per layer: residual add + RMSNorm, then the Mamba-2 layer's in_proj, bound fused step and
        out_proj, or the attention layer's own module (Hugging Face's, on the same cache: RoPE at `pos`, the KV
        update, SDPA), then residual add + RMSNorm and the MLP (down(silu(gate(x)) * up(x))) -> final norm ->
        lm_head. The Mamba-2 states are updated in place in the cache's tensors; the attention layers append
        to the cache's KV as Hugging Face's forward does. Why: toy-hybrid decoded 7.0-7.8 ms a token through
        the model's forward on this CPU (10 layers of module calls and config lookups around 55 small matmuls),
        slower than the transformer; see the commit that added it for the loop's time.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from backend.generation import ssm_fast
from kernels import dispatch


class CPUDecodeLoop:
    """Bound blocks of one model and one batch of sequences (see the module docstring)."""

    def __init__(self, batch: int, embedding: torch.Tensor, blocks: list, final_norm, head: tuple) -> None:
        self.batch = batch
        self.embedding = embedding  # [V, H]
        self.blocks = blocks  # (norm, in_proj (w, b), step, out_proj (w, b)) per block
        self.final_norm = final_norm
        self.head = head  # lm_head (w, b)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        out = F.embedding(ids.view(-1), self.embedding)  # [B, H]
        resid = None
        for norm, (w_in, b_in), step, (w_out, b_out) in self.blocks:
            normed, resid = norm(out, resid)
            out = F.linear(step(F.linear(normed, w_in, b_in)), w_out, b_out)
        normed, _ = self.final_norm(out, resid)
        return F.linear(normed, *self.head)


def _linear(module) -> tuple:
    return module.weight.detach(), (module.bias.detach() if module.bias is not None else None)


def _fp32_cpu(model) -> bool:
    return all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


def _mamba1_step(mixer, bind, conv, ssm):
    if mixer.activation != "silu":
        return None
    A, D, dt_bias = ssm_fast._ssm_params(mixer, mixer.dt_proj.bias)
    x_proj_t, dt_proj_t = ssm_fast._step_weights(mixer)
    return bind(conv, ssm_fast._conv_weight(mixer), mixer.conv1d.bias, x_proj_t, dt_proj_t, dt_bias, A, D, ssm)


def _mamba2_step(mixer, bind, conv, ssm):
    A, D, dt_bias = ssm_fast._ssm_params(mixer, mixer.dt_bias)
    if mixer.activation not in ("silu", "swish") or D.dim() != 1 or dt_bias is None:
        return None
    norm_group = getattr(mixer.norm, "group_size", None) or mixer.intermediate_size
    return bind(conv, ssm_fast._conv_weight(mixer), mixer.conv1d.bias, dt_bias, A, D, ssm, mixer.norm.weight,
                mixer.norm.variance_epsilon, norm_group, mixer.n_groups)


def build(model, family: str, cache, batch: int) -> CPUDecodeLoop | None:
    """Bind `model`'s blocks to `cache`'s state buffers (a `StaticSSMCache` after a prefill of `batch`
    sequences), or None where the loop does not apply (see the module docstring)."""
    device = next(model.parameters()).device
    bind_step = dispatch.fused("mamba1_step_bind" if family == "mamba" else "mamba2_step_bind", device)
    bind_norm = dispatch.fused("residual_norm_bind", device)
    if bind_step is None or bind_norm is None or family not in ("mamba", "mamba2") or not _fp32_cpu(model):
        return None
    backbone = model.backbone
    blocks = []
    for idx, block in enumerate(backbone.layers):
        conv, ssm = cache.get_conv_state(idx), cache.get_recurrent_state(idx)
        if conv is None or ssm is None or conv.shape[0] != batch or ssm.shape[0] != batch \
                or conv.dtype != torch.float32 or ssm.dtype != torch.float32 \
                or not (conv.is_contiguous() and ssm.is_contiguous()):
            return None
        mixer = block.mixer
        step = (_mamba1_step if family == "mamba" else _mamba2_step)(mixer, bind_step, conv, ssm)
        if step is None:
            return None
        norm = bind_norm(block.norm.weight, block.norm.variance_epsilon, batch)
        blocks.append((norm, _linear(mixer.in_proj), step, _linear(mixer.out_proj)))
    final = bind_norm(backbone.norm_f.weight, backbone.norm_f.variance_epsilon, batch)
    return CPUDecodeLoop(batch, backbone.embeddings.weight.detach(), blocks, final, _linear(model.lm_head))


class HybridDecodeLoop:
    """Bound layers of one Bamba hybrid and one batch of sequences (see the module docstring)."""

    def __init__(self, batch: int, embedding: torch.Tensor, layers: list, final_norm, head: tuple, rotary,
                 cache, cache_kw: str) -> None:
        self.batch = batch
        self.embedding = embedding  # [V, W]
        self.layers = layers  # (kind, in_norm, mixer, ff_norm, mlp) per layer
        self.final_norm = final_norm
        self.head = head
        self.rotary = rotary  # the model's rotary embedding module: (x, position_ids) -> (cos, sin)
        self.cache = cache
        self.cache_kw = cache_kw  # the attention module's cache keyword ("cache" in 5.24, "past_key_values" before)

    def __call__(self, ids: torch.Tensor, pos: int) -> torch.Tensor:
        out = F.embedding(ids.view(-1), self.embedding)  # [B, W]
        resid, rope = None, None
        for kind, in_norm, mixer, ff_norm, ((wg, bg), (wu, bu), (wd, bd)) in self.layers:
            normed, resid = in_norm(out, resid)
            if kind == "mamba":
                (w_in, b_in), step, (w_out, b_out) = mixer
                y = F.linear(step(F.linear(normed, w_in, b_in)), w_out, b_out)
            else:
                x = normed[:, None, :]
                if rope is None:  # the same positions for every attention layer of this step
                    rope = self.rotary(x, torch.full((self.batch, 1), pos, dtype=torch.long))
                y = mixer(hidden_states=x, position_embeddings=rope, attention_mask=None,
                          **{self.cache_kw: self.cache})[0][:, 0]
            normed, resid = ff_norm(y, resid)
            out = F.linear(F.silu(F.linear(normed, wg, bg)) * F.linear(normed, wu, bu), wd, bd)
        normed, _ = self.final_norm(out, resid)
        return F.linear(normed, *self.head)


def hybrid_layers(model, bind_mamba, bind_norm) -> tuple[list, str] | None:
    """A Bamba hybrid's layers as (kind, input norm, mixer, pre-MLP norm, MLP linears) each, with
    `bind_mamba(idx, mamba_mixer)` binding a Mamba-2 layer ("mamba": its (in_proj, bound layer, out_proj); None
    declines the model), an attention layer kept as its module ("attention"), and `bind_norm(rms_norm_module)`
    binding each norm; returns (layers, the attention modules' cache keyword), or None for a model this does not
    take (another layer kind, an MLP activation other than SiLU, not fp32 on the CPU)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not _fp32_cpu(model) or getattr(model.config, "hidden_act", None) != "silu":
        return None
    bound, cache_kw = [], "cache"
    for idx, layer in enumerate(layers):
        mixer = getattr(layer, "mamba", None)
        if mixer is not None:
            inner = bind_mamba(idx, mixer)
            if inner is None:
                return None
            kind, mix = "mamba", (_linear(mixer.in_proj), inner, _linear(mixer.out_proj))
        elif getattr(layer, "self_attn", None) is not None:
            params = inspect.signature(layer.self_attn.forward).parameters
            found = next((k for k in ("cache", "past_key_values", "past_key_value") if k in params), None)
            if found is None:
                return None
            kind, mix, cache_kw = "attention", layer.self_attn, found
        else:
            return None
        ff = layer.feed_forward
        bound.append((kind, bind_norm(layer.input_layernorm), mix, bind_norm(layer.pre_ff_layernorm),
                      (_linear(ff.gate_proj), _linear(ff.up_proj), _linear(ff.down_proj))))
    return bound, cache_kw


def build_hybrid(model, cache, batch: int) -> HybridDecodeLoop | None:
    """Bind a Bamba hybrid's layers to `cache` (its own cache after a prefill of `batch` sequences), or None
    where the loop does not apply (see the module docstring)."""
    device = next(model.parameters()).device
    bind_step = dispatch.fused("mamba2_step_bind", device)
    bind_norm = dispatch.fused("residual_norm_bind", device)
    if bind_step is None or bind_norm is None:
        return None

    def mamba(idx, mixer):
        conv, ssm, _ = ssm_fast._layer_states(cache, idx)
        if conv is None or ssm is None or conv.shape[0] != batch or ssm.shape[0] != batch \
                or conv.dtype != torch.float32 or ssm.dtype != torch.float32 \
                or not (conv.is_contiguous() and ssm.is_contiguous()):
            return None
        return _mamba2_step(mixer, bind_step, conv, ssm)

    found = hybrid_layers(model, mamba, lambda norm: bind_norm(norm.weight, norm.variance_epsilon, batch))
    if found is None:
        return None
    inner = model.model
    final = bind_norm(inner.final_layernorm.weight, inner.final_layernorm.variance_epsilon, batch)
    return HybridDecodeLoop(batch, inner.embed_tokens.weight.detach(), found[0], final, _linear(model.lm_head),
                            inner.rotary_emb, cache, found[1])
