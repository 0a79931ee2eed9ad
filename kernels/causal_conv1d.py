"""Depthwise causal conv1d (+ optional SiLU): prefill over a sequence, and the one-token update with a
rolling conv state (decode).

Shape glossary
    batch   sequences;  dim  channels;  seqlen  positions L;  K  kernel width (4 in Mamba)
    S       conv-state length, S >= K - 1 (Hugging Face keeps S == K, mamba-ssm S == K - 1)

causal_conv1d(x, weight, bias=None, activation=None)
    x (batch, dim, seqlen), any strides; weight (dim, K); bias (dim,)
    out[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (K - 1) + k])   (zero left padding)
    Returns (batch, dim, seqlen) stored position-major ((batch, seqlen, dim) memory order), which is the
    layout the following Linear wants.
causal_conv1d_update(x, conv_state, weight, bias=None, activation=None)
    x (batch, dim) (any batch stride); conv_state (batch, dim, S) contiguous, updated in place: shifted left by one with x
    appended.  With w = concat(conv_state_old, x) (S + 1 slots):
    out[b, d] = act(bias[d] + sum_k weight[d, k] * w[b, d, S + 1 - K + k]).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import conv_config, conv_update_config


@triton.jit
def _causal_conv1d_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr,
    dim, seqlen,
    s_x_b, s_x_d, s_x_l, s_o_b, s_o_d, s_o_l,
    K: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_l = tl.program_id(1)
    pid_d = tl.program_id(2)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < dim
    acc = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[None, :]
    for k in tl.static_range(K):
        src = offs_l - (K - 1) + k
        m = (src >= 0) & (src < seqlen)
        xv = tl.load(x_ptr + b * s_x_b + src[:, None] * s_x_l + offs_d[None, :] * s_x_d,
                     mask=m[:, None] & mask_d[None, :], other=0.0).to(tl.float32)
        wk = tl.load(w_ptr + offs_d * K + k, mask=mask_d, other=0.0).to(tl.float32)
        acc += xv * wk[None, :]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    mask = (offs_l < seqlen)[:, None] & mask_d[None, :]
    tl.store(out_ptr + b * s_o_b + offs_l[:, None] * s_o_l + offs_d[None, :] * s_o_d,
             acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _causal_conv1d_update_kernel(
    x_ptr, state_ptr, w_ptr, bias_ptr, out_ptr,
    dim, s_x_b,
    K: tl.constexpr, S: tl.constexpr, S_P2: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, S_P2)
    mask_d = offs_d < dim
    row = (b * dim + offs_d) * S
    xv = tl.load(x_ptr + b * s_x_b + offs_d, mask=mask_d, other=0.0)
    # read everything before writing: new[:, s] = old[:, s + 1] for s < S - 1, new[:, S - 1] = x
    shifted = tl.load(state_ptr + row[:, None] + offs_s[None, :] + 1,
                      mask=mask_d[:, None] & (offs_s < S - 1)[None, :], other=0.0)
    new = tl.where((offs_s == S - 1)[None, :], xv[:, None].to(shifted.dtype), shifted)
    k_idx = offs_s - (S - K)  # weight tap for each state slot; slots before S - K are out of the window
    w = tl.load(w_ptr + offs_d[:, None] * K + k_idx[None, :],
                mask=mask_d[:, None] & ((k_idx >= 0) & (offs_s < S))[None, :], other=0.0).to(tl.float32)
    acc = tl.sum(new.to(tl.float32) * w, axis=1)
    if S == K - 1:  # mamba-ssm layout: the oldest input, shifted out just now, is still in the window
        old0 = tl.load(state_ptr + row, mask=mask_d, other=0.0).to(tl.float32)
        acc += old0 * tl.load(w_ptr + offs_d * K, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    # Every read of the old state above must land before any thread overwrites it. Compiled, the (BLOCK_D, S_P2)
    # tiles and the (BLOCK_D,) vectors get different thread layouts (sm_90, 4 warps: row d of the tile lives in
    # warp (d // 8) % 4, old0[d] is loaded by warp (d % 128) // 32), so without a barrier another warp can store
    # new[d, 0] before old0[d] is read (a wrong output when S == K - 1). A no-op in the interpreter.
    tl.debug_barrier()
    tl.store(state_ptr + row[:, None] + offs_s[None, :], new, mask=mask_d[:, None] & (offs_s < S)[None, :])
    tl.store(out_ptr + b * dim + offs_d, acc.to(out_ptr.dtype.element_ty), mask=mask_d)


def _act(activation) -> bool:
    if activation in (None, "identity"):
        return False
    if activation in ("silu", "swish"):
        return True
    raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")


def _check_weight(weight, bias, dim, device):
    assert weight.dim() == 2 and weight.shape[0] == dim, f"weight must be (dim={dim}, K), got {tuple(weight.shape)}"
    assert weight.is_contiguous(), "weight must be contiguous"
    assert bias is None or (bias.shape == (dim,) and bias.is_contiguous()), "bias must be contiguous (dim,)"
    assert weight.device == device, "weight must be on the input's device"


def causal_conv1d(x, weight, bias=None, activation=None):
    """Triton depthwise causal conv over a sequence; see the module docstring."""
    batch, dim, seqlen = x.shape
    _check_weight(weight, bias, dim, x.device)
    silu = _act(activation)
    out = torch.empty(batch, seqlen, dim, device=x.device, dtype=x.dtype).transpose(1, 2)
    cfg = conv_config(x.device)
    grid = (batch, triton.cdiv(seqlen, cfg.block_l), triton.cdiv(dim, cfg.block_d))
    _causal_conv1d_kernel[grid](
        x, weight, bias, out, dim, seqlen, *x.stride(), *out.stride(),
        K=weight.shape[1], HAS_BIAS=bias is not None, SILU=silu,
        BLOCK_L=cfg.block_l, BLOCK_D=cfg.block_d, num_warps=cfg.num_warps,
    )
    return out


def causal_conv1d_ref(x, weight, bias=None, activation=None):
    """PyTorch reference (F.conv1d with left padding), same signature."""
    batch, dim, seqlen = x.shape
    _check_weight(weight, bias, dim, x.device)
    silu = _act(activation)
    K = weight.shape[1]
    out = torch.nn.functional.conv1d(x.float(), weight.float()[:, None, :], None if bias is None else bias.float(),
                                     padding=K - 1, groups=dim)[..., :seqlen]
    if silu:
        out = torch.nn.functional.silu(out)
    return out.to(x.dtype).transpose(1, 2).contiguous().transpose(1, 2)  # position-major, like the kernel


def _check_update(x, conv_state, weight, bias):
    batch, dim = x.shape
    assert conv_state.dim() == 3 and conv_state.shape[:2] == (batch, dim), "conv_state must be (batch, dim, S)"
    assert conv_state.shape[2] >= weight.shape[1] - 1, "conv_state needs at least K - 1 slots"
    assert conv_state.is_contiguous(), "conv_state must be contiguous"
    assert x.stride(1) == 1, "x must be contiguous along channels (any batch stride)"
    _check_weight(weight, bias, dim, x.device)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None):
    """Triton one-token conv step; updates `conv_state` in place and returns (batch, dim)."""
    _check_update(x, conv_state, weight, bias)
    batch, dim = x.shape
    S = conv_state.shape[2]
    out = torch.empty(batch, dim, device=x.device, dtype=x.dtype)
    cfg = conv_update_config(x.device)
    grid = (batch, triton.cdiv(dim, cfg.block_d))
    _causal_conv1d_update_kernel[grid](
        x, conv_state, weight, bias, out, dim, x.stride(0),
        K=weight.shape[1], S=S, S_P2=triton.next_power_of_2(S), HAS_BIAS=bias is not None,
        SILU=_act(activation), BLOCK_D=cfg.block_d, num_warps=cfg.num_warps,
    )
    return out


def causal_conv1d_update_ref(x, conv_state, weight, bias=None, activation=None):
    """PyTorch reference, same signature and in-place semantics."""
    _check_update(x, conv_state, weight, bias)
    K = weight.shape[1]
    conc = torch.cat([conv_state, x[:, :, None].to(conv_state.dtype)], dim=-1)  # (batch, dim, S + 1)
    conv_state.copy_(conc[:, :, 1:])
    out = (conc[:, :, -K:].float() * weight.float()).sum(-1)
    if bias is not None:
        out = out + bias.float()
    if _act(activation):
        out = torch.nn.functional.silu(out)
    return out.to(x.dtype)
