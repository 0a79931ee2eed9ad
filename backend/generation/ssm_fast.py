"""Make Hugging Face `MambaForCausalLM` / `Mamba2ForCausalLM` (and the Mamba-2 layers of the hybrid
`BambaForCausalLM`) run prefill and decode through `kernels/`.

`enable(model) -> path` replaces the `forward` of every `MambaMixer` / `Mamba2Mixer` / `BambaMixer` *instance*
(the class is untouched, so other models in the process keep Hugging Face's code) with a forward that does the
same math as Hugging Face's, with our ops from `kernels.dispatch`:
    Mamba-1   prefill: causal_conv1d -> x_proj/dt_proj -> selective_scan (y, final fp32 state)
              decode:  causal_conv1d_update -> x_proj/dt_proj -> selective_state_update (in place)
    Mamba-2   prefill: causal_conv1d over xBC -> ssd_chunk_scan (y, final state) -> fused gated RMSNorm
              decode:  causal_conv1d_update -> selective_state_update (scalar A per head, grouped B/C)
                       -> fused gated RMSNorm
`BambaMixer` is Mamba-2's mixer inside a hybrid (attention layers at `config.attn_layer_indices`, an MLP after
every layer): the same attributes, the same math (in_proj -> conv -> SSD with dt_bias, D, time_step_limit ->
gated RMSNorm, groups of intermediate_size / n_groups in 5.24, one group in 5.17 -> out_proj), the same
`apply_mask_to_padding_states` in its own modeling module, and the same cache calls on the hybrid cache (a
DynamicCache whose Mamba layers are linear-attention layers), so it runs `_mamba2_forward`. Its attention
layers stay on Hugging Face's path (SDPA by default) and keep their KV cache in the same cache object.
The path ("triton" on CUDA/ROCm GPUs, "cpu-chunked" on CPU: the compiled scan, chunked SSD and fused decode
ops of kernels/cpu_*.py; "reference" when forced or without numba; "mamba-ssm" when asked for) is returned
and stored on the model as `model.arena_path`, which the generation code records with every measurement.

Works with transformers 5.17 (GPU image: the mixer is called with `cache_params=`, the cache exposes
`has_previous_state` / `layers[i].conv_states`) and 5.24 (this repo's pin: `cache=`, `get_conv_state` /
`get_recurrent_state` / `is_recording_past`); `_layer_states` reads either, for pure Mamba-2 and Bamba
caches alike (both versions give Bamba the DynamicCache of Mamba-2). Both versions update the cache
with `update_conv_state(x, layer_idx, conv_kernel_size=K)` (returns the conv input with the cached left
context) and `update_recurrent_state(state, layer_idx)`. While a module is training, the original
forward runs (our kernels have no backward).
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

from kernels import dispatch

MIXER_CLASSES = {"MambaMixer": "mamba", "Mamba2Mixer": "mamba2", "BambaMixer": "mamba2"}  # class name -> math


def _mixers(model):
    return [(m, MIXER_CLASSES[type(m).__name__]) for m in model.modules() if type(m).__name__ in MIXER_CLASSES]


def enable(model) -> str:
    """Route every Mamba / Mamba-2 mixer of `model` (a hybrid's too) through our kernels; return the path that
    will run."""
    mixers = _mixers(model)
    if not mixers:
        raise ValueError(f"{type(model).__name__} has no MambaMixer, Mamba2Mixer or BambaMixer: only Mamba and "
                         "Mamba-2 models, and hybrids whose SSM layers are Mamba-2 (Bamba), can use the fast SSM "
                         "path.")
    for mixer, kind in mixers:
        if getattr(mixer, "_arena_fast", False):
            continue
        mixer._arena_orig_forward = mixer.forward
        mixer.forward = types.MethodType(_mamba1_forward if kind == "mamba" else _mamba2_forward, mixer)
        mixer._arena_fast = True
    path = dispatch.path_for(next(model.parameters()).device)
    model.arena_path = path
    return path


def disable(model) -> None:
    """Undo `enable` (back to Hugging Face's forward)."""
    for mixer, _ in _mixers(model):
        if getattr(mixer, "_arena_fast", False):
            del mixer.forward  # the instance attribute; the class method shows through again
            del mixer._arena_orig_forward
            mixer._arena_fast = False
    if hasattr(model, "arena_path"):
        del model.arena_path


def supports(model) -> bool:
    """Whether `model` has a mixer `enable` can route (a hybrid without one, e.g. Jamba, stays on HF's path)."""
    return bool(_mixers(model))


def is_enabled(model) -> bool:
    mixers = _mixers(model)
    return bool(mixers) and all(getattr(m, "_arena_fast", False) for m, _ in mixers)


def _layer_states(cache, idx: int):
    """(conv_state, recurrent_state, recording_past) of layer `idx`, for transformers 5.17 and 5.24 caches
    (and `backend.generation.ssm_stepper.StaticSSMCache`, which speaks the 5.24 API)."""
    if cache is None:
        return None, None, False
    if hasattr(cache, "get_conv_state"):  # transformers >= 5.2x
        return (cache.get_conv_state(idx, state_idx=0), cache.get_recurrent_state(idx, state_idx=0),
                bool(cache.is_recording_past(idx)))
    if cache.has_previous_state(idx):  # transformers 5.17
        layer = cache.layers[idx]
        return layer.conv_states[0], layer.recurrent_states[0], bool(getattr(layer, "record_past", False))
    return None, None, False


def _mask_fn(mixer):
    """Hugging Face's own `apply_mask_to_padding_states` from the mixer's modeling module."""
    return sys.modules[type(mixer).__module__].apply_mask_to_padding_states


def _conv_weight(mixer) -> torch.Tensor:
    return mixer.conv1d.weight.squeeze(1)  # (channels, K), contiguous


def _ssm_params(mixer, bias) -> tuple:
    """(A = -exp(A_log) fp32, D fp32, dt_bias fp32), cached on the mixer until a parameter changes (its
    version counter, device or storage): saves ~5 small kernels per layer and decode step."""
    params = [p for p in (mixer.A_log, mixer.D, bias) if p is not None]
    key = tuple((p._version, p.data_ptr(), p.device, p.dtype) for p in params)
    cached = mixer.__dict__.get("_arena_params")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            values = (-torch.exp(mixer.A_log.float()), mixer.D.float().contiguous(),
                      bias.float().contiguous() if bias is not None else None)
        mixer.__dict__["_arena_params"] = cached = (key, values)
    return cached[1]


def _step_weights(mixer) -> tuple[torch.Tensor, torch.Tensor]:
    """x_proj.weight and dt_proj.weight transposed, contiguous fp32 (the fused CPU step's layout), cached on
    the mixer until either changes (version counter or storage)."""
    ws = (mixer.x_proj.weight, mixer.dt_proj.weight)
    key = tuple((w._version, w.data_ptr(), w.dtype) for w in ws)
    cached = mixer.__dict__.get("_arena_step_weights")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, tuple(w.detach().float().t().contiguous() for w in ws))
        mixer.__dict__["_arena_step_weights"] = cached
    return cached[1]


def _zeros(mixer, n: int) -> torch.Tensor:
    """fp32 zeros [n] standing in for an absent bias, kept on the mixer (not allocated every decode step)."""
    z = mixer.__dict__.get("_arena_zeros")
    if z is None or z.shape[0] != n:
        z = mixer.__dict__["_arena_zeros"] = torch.zeros(n, dtype=torch.float32)
    return z


def _mamba1_forward(self, hidden_states, cache=None, attention_mask=None, cache_params=None, **kwargs):
    """MambaMixer.forward with our kernels. hidden_states (B, L, hidden) -> (B, L, hidden)."""
    if self.training:
        return self._arena_orig_forward(hidden_states, cache if cache is not None else cache_params,
                                        attention_mask=attention_mask)
    cache = cache if cache is not None else cache_params
    mask = _mask_fn(self)
    batch, seq_len, _ = hidden_states.shape
    dtype = hidden_states.dtype
    conv_state, ssm_state, recording = _layer_states(cache, self.layer_idx)
    hidden_states = mask(hidden_states, attention_mask)
    xz = self.in_proj(hidden_states)  # (B, L, 2D)
    x, gate = xz.chunk(2, dim=-1)  # (B, L, D) each, views
    A, D, dt_bias = _ssm_params(self, self.dt_proj.bias)
    n, r = self.ssm_state_size, self.time_step_rank

    if conv_state is not None and ssm_state is not None and seq_len == 1 and not recording:
        step = dispatch.fused("mamba1_step", hidden_states.device) if attention_mask is None else None
        if step is not None and self.activation == "silu" and conv_state.dtype == ssm_state.dtype == torch.float32 \
                and conv_state.is_contiguous() and ssm_state.is_contiguous():
            # the CPU path: everything between in_proj and out_proj in one call (kernels/cpu_mamba1_step.py)
            xpt, dpt = _step_weights(self)
            zeros = _zeros(self, self.intermediate_size) if self.conv1d.bias is None or dt_bias is None else None
            y = step(xz[:, 0], conv_state, _conv_weight(self),
                     self.conv1d.bias if self.conv1d.bias is not None else zeros, xpt, dpt,
                     dt_bias if dt_bias is not None else zeros, A, D, ssm_state)
            return self.out_proj(y[:, None].to(dtype))
        # row slices go straight into the kernels (batch strides): no copies in the decode step
        xc = dispatch.causal_conv1d_update(x[:, 0], conv_state, _conv_weight(self), self.conv1d.bias,
                                           self.activation)  # (B, D)
        xc = mask(xc[:, None], attention_mask)[:, 0]
        time_step, B, C = torch.split(self.x_proj(xc), [r, n, n], dim=-1)
        dt = F.linear(time_step, self.dt_proj.weight)  # bias goes in as dt_bias, as in Hugging Face
        y = dispatch.selective_state_update(ssm_state, xc, dt, A, B, C, D, gate[:, 0], dt_bias, True)
        return self.out_proj(y[:, None].to(dtype))

    xt = x.transpose(1, 2)  # (B, D, L) view
    if cache is not None:
        xt = cache.update_conv_state(xt, self.layer_idx, conv_kernel_size=self.conv_kernel_size)
    xc = dispatch.causal_conv1d(xt, _conv_weight(self), self.conv1d.bias, self.activation)[:, :, -seq_len:]
    xc = mask(xc.transpose(1, 2), attention_mask)  # (B, L, D)
    time_step, B, C = torch.split(self.x_proj(xc), [r, n, n], dim=-1)
    dt = F.linear(time_step, self.dt_proj.weight)  # (B, L, D)
    y, last_state = dispatch.selective_scan(xc.transpose(1, 2), dt.transpose(1, 2), A, B.transpose(1, 2),
                                            C.transpose(1, 2), D, gate.transpose(1, 2), dt_bias, True)
    if cache is not None:
        cache.update_recurrent_state(last_state, self.layer_idx)
    return self.out_proj(y.transpose(1, 2).to(dtype))


def _mamba2_forward(self, hidden_states, cache=None, attention_mask=None, cache_params=None, **kwargs):
    """Mamba2Mixer.forward with our kernels. hidden_states (B, L, hidden) -> (B, L, hidden)."""
    if self.training:
        return self._arena_orig_forward(hidden_states, cache if cache is not None else cache_params,
                                        attention_mask=attention_mask)
    cache = cache if cache is not None else cache_params
    mask = _mask_fn(self)
    batch, seq_len, _ = hidden_states.shape
    dtype = hidden_states.dtype
    conv_state, ssm_state, recording = _layer_states(cache, self.layer_idx)
    hidden_states = mask(hidden_states, attention_mask)
    proj = self.in_proj(hidden_states)
    gate, xBC, dt = proj.split([self.intermediate_size, self.conv_dim, self.num_heads], dim=-1)
    A, D, dt_bias = _ssm_params(self, self.dt_bias)
    H, P, G, N = self.num_heads, self.head_dim, self.n_groups, self.ssm_state_size
    sizes = [self.intermediate_size, G * N, G * N]
    norm_group = getattr(self.norm, "group_size", None) or self.intermediate_size

    decoding = conv_state is not None and ssm_state is not None and seq_len == 1 and not recording
    step = dispatch.fused("mamba2_step", hidden_states.device) if decoding and attention_mask is None else None
    if step is not None and self.activation in ("silu", "swish") and D.dim() == 1 and dt_bias is not None \
            and conv_state.dtype == ssm_state.dtype == torch.float32 and conv_state.is_contiguous() \
            and ssm_state.is_contiguous():
        # the CPU path: conv update, state update and gated norm in one call (kernels/cpu_mamba2_step.py)
        bias = self.conv1d.bias if self.conv1d.bias is not None else _zeros(self, self.conv_dim)
        y = step(proj[:, 0], conv_state, _conv_weight(self), bias, dt_bias, A, D, ssm_state, self.norm.weight,
                 self.norm.variance_epsilon, norm_group, G)
        return self.out_proj(y[:, None].to(dtype))
    if decoding:
        xBC = dispatch.causal_conv1d_update(xBC[:, 0], conv_state, _conv_weight(self),
                                            self.conv1d.bias, self.activation)  # (B, conv_dim)
        xBC = mask(xBC[:, None], attention_mask)[:, 0]
        x, B, C = torch.split(xBC, sizes, dim=-1)  # row slices: passed with their batch strides
        y = dispatch.selective_state_update(
            ssm_state, x.view(batch, H, P), dt[:, 0], A, B.view(batch, G, N), C.view(batch, G, N), D, None,
            dt_bias, True)
        y = y.reshape(batch, 1, self.intermediate_size)
    else:
        xt = xBC.transpose(1, 2)  # (B, conv_dim, L)
        if cache is not None:
            xt = cache.update_conv_state(xt, self.layer_idx, conv_kernel_size=self.conv_kernel_size)
        xc = dispatch.causal_conv1d(xt, _conv_weight(self), self.conv1d.bias, self.activation)[:, :, -seq_len:]
        xc = mask(xc.transpose(1, 2), attention_mask)  # (B, L, conv_dim), last dim contiguous
        x, B, C = torch.split(xc, sizes, dim=-1)
        y, last_state = dispatch.ssd_chunk_scan(
            x.reshape(batch, seq_len, H, P), dt, A, B.reshape(batch, seq_len, G, N), C.reshape(batch, seq_len, G, N),
            D, None, dt_bias, True, tuple(self.time_step_limit),
            ssm_state.contiguous() if ssm_state is not None else None)
        if cache is not None:
            cache.update_recurrent_state(last_state, self.layer_idx)
        y = y.reshape(batch, seq_len, self.intermediate_size)
    # Hugging Face's gated RMSNorm (groups of intermediate_size / n_groups in 5.24, one group in 5.17), fused
    y, _ = dispatch.rms_norm(y, self.norm.weight, self.norm.variance_epsilon, z=gate,
                             group_size=getattr(self.norm, "group_size", None))
    return self.out_proj(y.to(dtype))
