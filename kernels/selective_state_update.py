"""Selective state update: one decode step of a Mamba-1 or Mamba-2 SSM, state updated in place.

In the style of state-spaces/mamba `ops/triton/selective_state_update.py`, written for this project.

Shape glossary
    batch    sequences decoded together
    nheads   SSM heads (Mamba-2); Mamba-1 is nheads == 1 (the 2-D / 3-D call forms below)
    dim      channels per head (Mamba-2 head_dim; Mamba-1 d_inner)
    dstate   state size N
    ngroups  B/C groups; heads are split evenly over groups (nheads % ngroups == 0)

Arguments (Mamba-2 form)
    state   (batch, nheads, dim, dstate)  fp32/bf16/fp16, updated in place
    x       (batch, nheads, dim)
    dt      (batch, nheads, dim), or (batch, nheads) when A is per head ("tied")
    A       (nheads, dim, dstate) fp32, or (nheads,) for Mamba-2's scalar A per head
    B, C    (batch, ngroups, dstate)
    D       (nheads, dim) or (nheads,) or None;  dt_bias like dt without the batch dim, or None
    z       like x or None (output gated by z * sigmoid(z))
Mamba-1 form: state (batch, dim, dstate), x/dt/z (batch, dim), A (dim, dstate), B/C (batch, dstate),
D/dt_bias (dim,).  Returns out shaped like x (contiguous). state, A, D, dt_bias must be contiguous; x, dt,
z, B, C may be row slices of larger tensors (any batch stride, contiguous inside a row; C strided like B),
so a decode step needs no copies.

    dt   = softplus(dt + dt_bias)            (if dt_softplus)
    state = state * exp(dt * A) + dt * B * x
    out   = sum_n state * C + D * x;  out *= silu(z)

No autotune here: the kernel writes `state` in place, and autotune would run it several times.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import ssu_config


@triton.jit
def _softplus(x):
    # log1p(exp(x)) with the usual cut-off; tl.log/tl.exp lower to portable ops on CUDA and ROCm
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(x)), x)


@triton.jit
def _selective_state_update_kernel(
    # pointers
    state_ptr, x_ptr, dt_ptr, dt_bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, out_ptr,
    # sizes, and batch strides of the row inputs (inner dims contiguous: checked by the wrapper)
    dim, dstate, nheads, heads_per_group, s_x_b, s_dt_b, s_z_b, s_B_b,
    # meta
    DT_SOFTPLUS: tl.constexpr, TIE_HDIM: tl.constexpr, HAS_DT_BIAS: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # state / out are contiguous; x, dt, z, B, C may be row slices of bigger tensors (batch strides)
    pid_m = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    h = tl.program_id(2)
    g = h // heads_per_group
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    mask_m = offs_m < dim
    mask_n = offs_n < dstate
    mask_mn = mask_m[:, None] & mask_n[None, :]

    row = (b * nheads + h) * dim  # start of (b, h) in state rows / out
    st_ptrs = state_ptr + (row + offs_m[:, None]) * dstate + offs_n[None, :]
    st = tl.load(st_ptrs, mask=mask_mn, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + b * s_x_b + h * dim + offs_m, mask=mask_m, other=0.0).to(tl.float32)

    if TIE_HDIM:
        dt = tl.load(dt_ptr + b * s_dt_b + h).to(tl.float32)
        if HAS_DT_BIAS:
            dt += tl.load(dt_bias_ptr + h).to(tl.float32)
        if DT_SOFTPLUS:
            dt = _softplus(dt)
        a = tl.load(A_ptr + h).to(tl.float32)
        dA = tl.exp(a * dt)  # scalar: one exp per head
        dt_m = dt
    else:
        dt_m = tl.load(dt_ptr + b * s_dt_b + h * dim + offs_m, mask=mask_m, other=0.0).to(tl.float32)
        if HAS_DT_BIAS:
            dt_m += tl.load(dt_bias_ptr + h * dim + offs_m, mask=mask_m, other=0.0).to(tl.float32)
        if DT_SOFTPLUS:
            dt_m = _softplus(dt_m)
        a = tl.load(A_ptr + (h * dim + offs_m[:, None]) * dstate + offs_n[None, :], mask=mask_mn, other=0.0)
        dA = tl.exp(a.to(tl.float32) * dt_m[:, None])

    bc_off = b * s_B_b + g * dstate + offs_n  # C shares B's strides
    Bv = tl.load(B_ptr + bc_off, mask=mask_n, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + bc_off, mask=mask_n, other=0.0).to(tl.float32)
    if TIE_HDIM:
        dBx = (Bv * dt_m)[None, :] * x[:, None]
    else:
        dBx = Bv[None, :] * (dt_m * x)[:, None]
    st = st * dA + dBx
    tl.store(st_ptrs, st.to(state_ptr.dtype.element_ty), mask=mask_mn)

    out = tl.sum(st * Cv[None, :], axis=1)
    if HAS_D:
        if TIE_HDIM:
            out += x * tl.load(D_ptr + h).to(tl.float32)
        else:
            out += x * tl.load(D_ptr + h * dim + offs_m, mask=mask_m, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_ptr + b * s_z_b + h * dim + offs_m, mask=mask_m, other=0.0).to(tl.float32)
        out *= z * tl.sigmoid(z)
    tl.store(out_ptr + row + offs_m, out.to(out_ptr.dtype.element_ty), mask=mask_m)


def _to_heads(state, x, dt, A, B, C, D, z, dt_bias):
    """Lift the Mamba-1 call form to the Mamba-2 one (nheads = ngroups = 1)."""
    if state.dim() == 3:
        state, x, dt, z = state.unsqueeze(1), x.unsqueeze(1), dt.unsqueeze(1), None if z is None else z.unsqueeze(1)
        A, B, C = A.unsqueeze(0), B.unsqueeze(1), C.unsqueeze(1)
        D = None if D is None else D.unsqueeze(0)
        dt_bias = None if dt_bias is None else dt_bias.unsqueeze(0)
    return state, x, dt, A, B, C, D, z, dt_bias


def _rows_contiguous(t) -> bool:
    """Contiguous after the first (batch) dim."""
    return t[0].is_contiguous() if t.shape[0] > 0 else True


def _check(state, x, dt, A, B, C, D, z, dt_bias):
    batch, nheads, dim, dstate = state.shape
    tied = A.dim() == 1
    assert x.shape == (batch, nheads, dim), f"x must be {(batch, nheads, dim)}, got {tuple(x.shape)}"
    assert dt.shape == ((batch, nheads) if tied else (batch, nheads, dim)), f"bad dt shape {tuple(dt.shape)}"
    assert A.shape == ((nheads,) if tied else (nheads, dim, dstate)), f"bad A shape {tuple(A.shape)}"
    assert B.dim() == 3 and B.shape[0] == batch and B.shape[2] == dstate, f"bad B shape {tuple(B.shape)}"
    assert C.shape == B.shape, "C must have the shape of B"
    assert nheads % B.shape[1] == 0, "nheads must be a multiple of ngroups"
    pshape = (nheads,) if tied else (nheads, dim)
    assert D is None or D.shape == pshape, f"D must be {pshape}"
    assert dt_bias is None or dt_bias.shape == pshape, f"dt_bias must be {pshape}"
    assert z is None or z.shape == x.shape, "z must have the shape of x"
    for name, t in dict(state=state, A=A, D=D, dt_bias=dt_bias).items():
        if t is not None:
            assert t.is_contiguous(), f"{name} must be contiguous"
    for name, t in dict(x=x, dt=dt, z=z, B=B, C=C).items():  # rows may be slices: inner dims contiguous
        if t is not None:
            assert _rows_contiguous(t), f"{name} must be contiguous apart from its batch stride"
    assert C.stride() == B.stride(), "C must have B's strides (e.g. both slices of one tensor)"
    for name, t in dict(x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias).items():
        if t is not None:
            assert t.device == state.device, f"{name} is on {t.device}, state on {state.device}"
    assert state.dtype in (torch.float32, torch.bfloat16, torch.float16), "state must be fp32/bf16/fp16"


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """Triton decode step; see the module docstring. Updates `state` in place and returns out."""
    squeeze = state.dim() == 3
    state4, x, dt, A, B, C, D, z, dt_bias = _to_heads(state, x, dt, A, B, C, D, z, dt_bias)
    _check(state4, x, dt, A, B, C, D, z, dt_bias)
    batch, nheads, dim, dstate = state4.shape
    out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    cfg = ssu_config(dstate, dim, tied=A.dim() == 1, device=state.device)
    grid = (triton.cdiv(dim, cfg.block_m), batch, nheads)
    _selective_state_update_kernel[grid](
        state4, x, dt, dt_bias, A, B, C, D, z, out,
        dim, dstate, nheads, nheads // B.shape[1], x.stride(0), dt.stride(0), (z if z is not None else x).stride(0),
        B.stride(0),
        DT_SOFTPLUS=dt_softplus, TIE_HDIM=A.dim() == 1, HAS_DT_BIAS=dt_bias is not None,
        HAS_D=D is not None, HAS_Z=z is not None, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        num_warps=cfg.num_warps,
    )
    return out.squeeze(1) if squeeze else out


def selective_state_update_ref(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """PyTorch reference with the same signature and in-place semantics (fp32 math)."""
    squeeze = state.dim() == 3
    state4, x, dt, A, B, C, D, z, dt_bias = _to_heads(state, x, dt, A, B, C, D, z, dt_bias)
    _check(state4, x, dt, A, B, C, D, z, dt_bias)
    batch, nheads, dim, dstate = state4.shape
    tied = A.dim() == 1
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = torch.nn.functional.softplus(dt)
    if tied:
        dA = torch.exp(dt * A.float())[:, :, None, None]  # (batch, nheads, 1, 1)
        dt = dt[:, :, None].expand(batch, nheads, dim)
    else:
        dA = torch.exp(dt[..., None] * A.float())
    rep = nheads // B.shape[1]
    Bh = B.float().repeat_interleave(rep, dim=1)[:, :, None, :]  # (batch, nheads, 1, dstate)
    Ch = C.float().repeat_interleave(rep, dim=1)[:, :, None, :]
    xf = x.float()
    new = state4.float() * dA + Bh * (dt * xf)[..., None]
    state4.copy_(new.to(state4.dtype))
    out = (new * Ch).sum(-1)
    if D is not None:
        out = out + xf * (D.float()[:, None] if tied else D.float())
    if z is not None:
        out = out * torch.nn.functional.silu(z.float())
    out = out.to(x.dtype)
    return out.squeeze(1) if squeeze else out
