"""Fast *training* forwards for Hugging Face `MambaForCausalLM` / `Mamba2ForCausalLM` and the Mamba-2 layers of
the hybrid `BambaForCausalLM` (autograd-capable).

Why our own: transformers' training paths without mamba-ssm are the pure-PyTorch ones, which materialise
(batch, L, d_inner, d_state) tensors (Mamba-1 via mambapy's parallel scan) or broadcast (batch, chunks,
chunk, chunk, heads, d_state) products (Mamba-2 `torch_forward`); on an H100 they cost 207 ms and 311 ms
per 8 x 1024-token step against 43 ms for the matched Llama. The GPU image has no mamba-ssm.

`enable_training(model, kinds) -> {kind: path}` replaces the `forward` of every mixer *instance* with one
that, while the module is training, runs the same math as Hugging Face's through differentiable ops:
    Mamba-1   in_proj -> depthwise conv1d (torch) -> x_proj/dt_proj -> kernels.selective_scan_train
              (Triton forward + backward on a GPU) -> out_proj
    Mamba-2   in_proj -> depthwise conv1d (torch) -> kernels.ssd_train.ssd_chunked (chunked SSD as batched
              matmuls, PyTorch autograd) -> gated RMSNorm -> out_proj
A `BambaMixer` (the hybrid's Mamba-2 layers; its attention layers and MLPs stay Hugging Face's) is kind
"mamba2": same attributes, same math; without mamba-ssm its training forward is the same pure-PyTorch SSD
(`mamba2_split_conv1d_scan_combined` returns None there), which is what the end-to-end check compares against.
In eval mode the mixer falls through to whatever forward it had before (Hugging Face's, or ssm_fast's).
The paths ("triton-train" / "reference-train" / "torch-chunked-ssd") are recorded in train summaries.
Checked end to end by tests/backend/training/test_copy_regression.py: a tiny model trained on a copy task
through these forwards tracks one trained through transformers' own (issue #13: they agree; the bundled
toy-mamba's failure to copy is not this path's doing).
"""

from __future__ import annotations

import sys
import types

from kernels import dispatch
from kernels import selective_scan_train as sst

MIXER_CLASSES = {"MambaMixer": "mamba", "Mamba2Mixer": "mamba2", "BambaMixer": "mamba2"}  # class -> kind


def _mixers(model):
    return [(m, MIXER_CLASSES[type(m).__name__]) for m in model.modules() if type(m).__name__ in MIXER_CLASSES]


def has_mixers(model, kind: str) -> bool:
    """Whether `model` has a mixer of `kind` ("mamba" | "mamba2") that `enable_training` can patch."""
    return any(k == kind for _, k in _mixers(model))


def _mamba1_train_forward(self, hidden_states, cache=None, attention_mask=None, cache_params=None, **kwargs):
    """MambaMixer.forward while training. hidden_states (B, L, hidden) -> (B, L, hidden).

    Hugging Face's math (slow_forward / the mamba-ssm path), every op differentiable: padding positions
    zeroed before in_proj and after the conv as `apply_mask_to_padding_states` does, depthwise causal conv
    through `self.conv1d` (torch), dt_proj's bias given to the scan as delta_bias (softplus in the scan),
    A = -exp(A_log) in fp32. The scan is `selective_scan_train` (Triton forward + backward) when
    `kernels.dispatch.uses_triton` says so for the device (GPU, or CPU tensors under a forced
    TRITON_INTERPRET run), else its PyTorch reference (also under the CPU fast path "cpu-chunked", which has
    no training scan: the Triton op cannot run on CPU tensors outside the interpreter)."""
    import torch
    import torch.nn.functional as F


    mask = sys.modules[type(self).__module__].apply_mask_to_padding_states
    dtype = hidden_states.dtype
    seq_len = hidden_states.shape[1]
    hidden_states = mask(hidden_states, attention_mask)
    x, gate = self.in_proj(hidden_states).transpose(1, 2).chunk(2, dim=1)  # (B, D, L) views
    x = self.act(self.conv1d(x.to(self.conv1d.weight.dtype))[..., :seq_len])  # (B, D, L)
    x = mask(x.transpose(1, 2), attention_mask)  # (B, L, D)
    n, r = self.ssm_state_size, self.time_step_rank
    time_step, B, C = torch.split(self.x_proj(x), [r, n, n], dim=-1)
    dt = F.linear(time_step, self.dt_proj.weight)  # (B, L, D); the bias goes in as delta_bias
    A = -torch.exp(self.A_log.float())
    bias = self.dt_proj.bias.float() if self.dt_proj.bias is not None else None
    scan = sst.selective_scan_train if dispatch.uses_triton(x.device) else sst.selective_scan_train_ref
    y = scan(x.transpose(1, 2), dt.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2),
             self.D.float(), gate, bias, True)  # (B, D, L)
    return self.out_proj(y.transpose(1, 2).to(dtype))


def _mamba2_train_forward(self, hidden_states, cache=None, attention_mask=None, cache_params=None, **kwargs):
    """Mamba2Mixer.forward while training. hidden_states (B, L, hidden) -> (B, L, hidden).

    The math of Hugging Face's pure-PyTorch forward without a cache (transformers 5.17 `torch_forward`, 5.24
    `forward` + `mamba2_chunk_scan`): padding mask -> in_proj -> split (gate, xBC, dt) -> depthwise conv1d +
    activation (the module's own conv1d, causal by slicing) -> padding mask -> ssd_chunked (softplus(dt +
    dt_bias) clamped to time_step_limit, A = -exp(A_log), D skip; fp32) -> the model's gated RMSNorm
    `self.norm(y, gate)` (its grouping differs between versions; calling the module keeps it exact) ->
    out_proj. The scan output goes into the norm in fp32, as in Hugging Face. The chunk length is 64 (or
    seqlen when shorter) whatever `self.chunk_size` says: it does not change the result, only the speed.
    Differences: under bf16 autocast transformers 5.24 adds dt_bias and applies softplus in bf16; here dt
    is processed in fp32 (5.17 promotes to fp32 too)."""
    import torch

    from kernels.ssd_train import ssd_chunked

    mask = sys.modules[type(self).__module__].apply_mask_to_padding_states
    batch, seq_len, _ = hidden_states.shape
    dtype = hidden_states.dtype
    H, P, G, N = self.num_heads, self.head_dim, self.n_groups, self.ssm_state_size
    hidden_states = mask(hidden_states, attention_mask)
    projected = self.in_proj(hidden_states)
    # older checkpoints may carry 2 * d_mlp extra leading columns (transformers drops them): take the tail
    gate, xBC, dt = projected[..., projected.shape[-1] - (self.intermediate_size + self.conv_dim + H):].split(
        [self.intermediate_size, self.conv_dim, H], dim=-1)
    xBC = self.act(self.conv1d(xBC.transpose(1, 2))[..., :seq_len].transpose(1, 2))  # conv1d pads K-1 both sides
    xBC = mask(xBC, attention_mask)
    x, B, C = torch.split(xBC, [self.intermediate_size, G * N, G * N], dim=-1)
    A = -torch.exp(self.A_log.float())
    y = ssd_chunked(x.reshape(batch, seq_len, H, P).float(), dt, A, B.reshape(batch, seq_len, G, N),
                    C.reshape(batch, seq_len, G, N), chunk_size=64, D=self.D, z=None, dt_bias=self.dt_bias,
                    dt_softplus=True, dt_limit=tuple(self.time_step_limit))
    y = self.norm(y.reshape(batch, seq_len, self.intermediate_size), gate)
    return self.out_proj(y.to(dtype))


def _dispatching(train_fn):
    def forward(self, hidden_states, cache=None, attention_mask=None, cache_params=None, **kwargs):
        if self.training and (cache if cache is not None else cache_params) is None:
            return train_fn(self, hidden_states, attention_mask=attention_mask)
        return self._arena_pre_train_forward(hidden_states, cache if cache is not None else cache_params,
                                             attention_mask=attention_mask, **kwargs)
    return forward


def enable_training(model, kinds=("mamba", "mamba2")) -> dict:
    """Patch the mixers of `model` whose kind is in `kinds`; return {kind: path} for what was patched."""
    paths = {}
    for mixer, kind in _mixers(model):
        if kind not in kinds or getattr(mixer, "_arena_train", False):
            continue
        mixer._arena_pre_train_forward = mixer.forward
        fn = _mamba1_train_forward if kind == "mamba" else _mamba2_train_forward
        mixer.forward = types.MethodType(_dispatching(fn), mixer)
        mixer._arena_train = True
        paths[kind] = train_path(kind, next(model.parameters()).device)
    return paths


def disable_training(model) -> None:
    for mixer, _ in _mixers(model):
        if getattr(mixer, "_arena_train", False):
            mixer.forward = mixer._arena_pre_train_forward
            del mixer._arena_pre_train_forward
            mixer._arena_train = False


def train_path(kind: str, device) -> str:
    if kind == "mamba2":
        return "torch-chunked-ssd"

    return "triton-train" if dispatch.uses_triton(device) else "reference-train"
