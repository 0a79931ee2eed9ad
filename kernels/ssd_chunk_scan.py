"""Mamba-2 chunked SSD scan (prefill) with the final state, in one kernel.

Shape glossary
    batch    sequences
    seqlen   positions L
    nheads   heads H;  headdim P (channels per head);  dstate N
    ngroups  B/C groups G (nheads % ngroups == 0)
    Q        chunk length (a launch parameter: the result does not depend on it beyond rounding)

Arguments (mamba-ssm `mamba_chunk_scan_combined` layout; last dims contiguous; C strided like B, z like x)
    x             (batch, seqlen, nheads, headdim)   fp32/bf16/fp16
    dt            (batch, seqlen, nheads)
    A             (nheads,) fp32 (negative)
    B, C          (batch, seqlen, ngroups, dstate)
    D             (nheads,) or (nheads, headdim) or None;  z like x or None;  dt_bias (nheads,) or None
    initial_states (batch, nheads, headdim, dstate) or None
Returns y (batch, seqlen, nheads, headdim) in x's dtype and final_states (batch, nheads, headdim, dstate) fp32.

    dt_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max)
    h_t  = exp(dt_t * A) h_{t-1} + dt_t x_t B_t^T;     y_t = h_t C_t + D x_t;   y_t *= silu(z_t)

Design: one program owns a (BLOCK_P, N) slice of one head's state and walks the sequence chunk by chunk
(state passing happens in registers, so there is no separate state-passing kernel and no per-chunk
state tensor in memory). Per chunk of Q positions, with cs = cumsum(dt * A) inside the chunk:
    y    = exp(cs_t) * (C @ S^T)                         inter-chunk: the carried state
         + ((C @ B^T) * exp(cs_t - cs_s) [s <= t] * dt_s) @ x     intra-chunk, a masked "attention"
    S    = exp(cs_last) * S + (x * exp(cs_last - cs_s) * dt_s)^T @ B
All exponents are <= 0 (A < 0, dt >= 0), so nothing overflows.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import ssd_config


@triton.jit
def _ssd_chunk_scan_kernel(
    x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dt_bias_ptr, h0_ptr, out_ptr, hN_ptr,
    seqlen, nheads,
    s_x_b, s_x_l, s_x_h, s_dt_b, s_dt_l, s_dt_h, s_B_b, s_B_l, s_B_g,
    # model constants are compile-time: fewer scalar registers (SGPRs on AMD) and no masks when N is a power of 2
    headdim: tl.constexpr, dstate: tl.constexpr, heads_per_group: tl.constexpr,
    DT_MIN: tl.constexpr, DT_MAX: tl.constexpr,
    DT_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, D_HAS_HDIM: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_DT_BIAS: tl.constexpr, HAS_H0: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // nheads
    h = pid_bh % nheads
    b64 = b.to(tl.int64)  # per-sequence base pointers in 64 bits (batch x stride passes 2**31); the rest 32-bit
    x_base = x_ptr + b64 * s_x_b + h * s_x_h
    dt_base = dt_ptr + b64 * s_dt_b + h * s_dt_h
    out_base = out_ptr + b64 * seqlen * nheads * headdim + h * headdim
    g = h // heads_per_group
    B_base = B_ptr + b64 * s_B_b + g * s_B_g
    C_base = C_ptr + b64 * s_B_b + g * s_B_g
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    offs_q = tl.arange(0, BLOCK_Q)
    mask_p = offs_p < headdim
    mask_n = offs_n < dstate
    mask_pn = mask_p[:, None] & mask_n[None, :]

    a = tl.load(A_ptr + h).to(tl.float32)
    if HAS_DT_BIAS:
        dtb = tl.load(dt_bias_ptr + h).to(tl.float32)
    if HAS_D:
        if D_HAS_HDIM:
            Dv = tl.load(D_ptr + h * headdim + offs_p, mask=mask_p, other=0.0).to(tl.float32)
        else:
            Dv = tl.load(D_ptr + h).to(tl.float32)
    st_off = pid_bh.to(tl.int64) * headdim * dstate + offs_p[:, None] * dstate + offs_n[None, :]
    if HAS_H0:
        S = tl.load(h0_ptr + st_off, mask=mask_pn, other=0.0).to(tl.float32)
    else:
        S = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    causal = offs_q[:, None] >= offs_q[None, :]

    for c0 in range(0, seqlen, BLOCK_Q):
        ls = c0 + offs_q
        mask_q = ls < seqlen
        dt = tl.load(dt_base + ls * s_dt_l, mask=mask_q, other=0.0).to(tl.float32)
        if HAS_DT_BIAS:
            dt += dtb
        if DT_SOFTPLUS:
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        if DT_MIN > 0.0:
            dt = tl.maximum(dt, DT_MIN)
        if DT_MAX < 3.0e38:
            dt = tl.minimum(dt, DT_MAX)
        dt = tl.where(mask_q, dt, 0.0)  # past the end: no decay, no input
        cs = tl.cumsum(dt * a, axis=0)  # (Q,), non-increasing
        cs_last = tl.sum(tl.where(offs_q == BLOCK_Q - 1, cs, 0.0), axis=0)

        mask_qp = mask_q[:, None] & mask_p[None, :]
        mask_qn = mask_q[:, None] & mask_n[None, :]
        # dot operands in DOT_DTYPE: the input dtype on GPUs (bf16/fp16 tensor cores, fp32 accumulation)
        x = tl.load(x_base + ls[:, None] * s_x_l + offs_p[None, :], mask=mask_qp, other=0.0)
        Bm = tl.load(B_base + ls[:, None] * s_B_l + offs_n[None, :], mask=mask_qn, other=0.0)
        Cm = tl.load(C_base + ls[:, None] * s_B_l + offs_n[None, :], mask=mask_qn, other=0.0)
        x = x.to(DOT_DTYPE)
        Bm = Bm.to(DOT_DTYPE)
        Cm = Cm.to(DOT_DTYPE)

        y = tl.dot(Cm, tl.trans(S.to(x.dtype)), input_precision=PRECISION) * tl.exp(cs)[:, None]  # (Q, P) from the carried state
        CB = tl.dot(Cm, tl.trans(Bm), input_precision=PRECISION)  # (Q, Q) fp32
        decay = tl.where(causal, tl.exp(cs[:, None] - cs[None, :]), 0.0)
        y += tl.dot((CB * decay * dt[None, :]).to(x.dtype), x, input_precision=PRECISION)
        if HAS_D:
            if D_HAS_HDIM:
                y += x.to(tl.float32) * Dv[None, :]
            else:
                y += x.to(tl.float32) * Dv
        if HAS_Z:
            z = tl.load(z_ptr + b64 * s_x_b + h * s_x_h + ls[:, None] * s_x_l + offs_p[None, :],
                        mask=mask_qp, other=0.0).to(tl.float32)
            y *= z * tl.sigmoid(z)
        # out is contiguous (batch, seqlen, nheads, headdim)
        tl.store(out_base + ls[:, None] * (nheads * headdim) + offs_p[None, :],
                 y.to(out_ptr.dtype.element_ty), mask=mask_qp)

        w = tl.exp(cs_last - cs) * dt  # (Q,)
        S = S * tl.exp(cs_last) + tl.dot(tl.trans((x.to(tl.float32) * w[:, None]).to(x.dtype)), Bm,
                                          input_precision=PRECISION)
    tl.store(hN_ptr + st_off, S, mask=mask_pn)


_TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


def _check(x, dt, A, B, C, D, z, dt_bias, initial_states):
    batch, seqlen, nheads, headdim = x.shape
    assert x.dtype in (torch.float32, torch.bfloat16, torch.float16), "x must be fp32, bf16 or fp16"
    assert dt.shape == (batch, seqlen, nheads), f"dt must be {(batch, seqlen, nheads)}, got {tuple(dt.shape)}"
    assert A.shape == (nheads,), "A must be (nheads,)"
    assert B.dim() == 4 and B.shape[:2] == (batch, seqlen) and C.shape == B.shape, "B, C must be (batch, seqlen, ngroups, dstate)"
    assert nheads % B.shape[2] == 0, "nheads must be a multiple of ngroups"
    assert D is None or D.shape in ((nheads,), (nheads, headdim)), "D must be (nheads,) or (nheads, headdim)"
    assert dt_bias is None or dt_bias.shape == (nheads,), "dt_bias must be (nheads,)"
    assert z is None or z.shape == x.shape, "z must have the shape of x"
    dstate = B.shape[3]
    assert initial_states is None or initial_states.shape == (batch, nheads, headdim, dstate), "bad initial_states shape"
    for name, t in dict(x=x, B=B, C=C, z=z).items():
        assert t is None or t.stride(-1) == 1, f"the last dim of {name} must be contiguous"
    # fewer scalar arguments (SGPR pressure on AMD): C shares B's strides, z shares x's
    assert C.stride() == B.stride(), "C must have B's strides (e.g. both slices of one tensor, or both contiguous)"
    assert z is None or z.stride() == x.stride(), "z must have x's strides"
    for name, t in dict(A=A, D=D, dt_bias=dt_bias, initial_states=initial_states).items():
        assert t is None or t.is_contiguous(), f"{name} must be contiguous"


def ssd_chunk_scan(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                   initial_states=None):
    """Triton SSD prefill; see the module docstring. Returns (y, final_states fp32)."""
    _check(x, dt, A, B, C, D, z, dt_bias, initial_states)
    batch, seqlen, nheads, headdim = x.shape
    dstate = B.shape[3]
    out = torch.empty(batch, seqlen, nheads, headdim, device=x.device, dtype=x.dtype)
    hN = torch.empty(batch, nheads, headdim, dstate, device=x.device, dtype=torch.float32)
    cfg = ssd_config(headdim, dstate, x.device)
    grid = (triton.cdiv(headdim, cfg.block_p), batch * nheads)
    _ssd_chunk_scan_kernel[grid](
        x, dt, A, B, C, D, z, dt_bias, initial_states, out, hN,
        seqlen, nheads,
        x.stride(0), x.stride(1), x.stride(2), *dt.stride(), B.stride(0), B.stride(1), B.stride(2),
        headdim=headdim, dstate=dstate, heads_per_group=nheads // B.shape[2],
        DT_MIN=float(dt_limit[0]), DT_MAX=min(float(dt_limit[1]), 3.0e38),
        # the Triton interpreter (CPU) computes bf16 tl.dot wrongly (triton 3.9), so dots run in fp32 there
        DOT_DTYPE=tl.float32 if x.device.type == "cpu" else _TL_DTYPES[x.dtype],
        PRECISION="ieee" if x.dtype == torch.float32 else None,  # fp32 inputs: no silent TF32 rounding
        DT_SOFTPLUS=dt_softplus, HAS_D=D is not None, D_HAS_HDIM=D is not None and D.dim() == 2,
        HAS_Z=z is not None, HAS_DT_BIAS=dt_bias is not None, HAS_H0=initial_states is not None,
        BLOCK_Q=cfg.block_m, BLOCK_P=cfg.block_p, BLOCK_N=cfg.block_n, num_warps=cfg.num_warps,
    )
    return out, hN


def ssd_chunk_scan_ref(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                       dt_limit=(0.0, float("inf")), initial_states=None):
    """PyTorch reference, same signature: the plain recurrence, one position at a time (fp32)."""
    _check(x, dt, A, B, C, D, z, dt_bias, initial_states)
    batch, seqlen, nheads, headdim = x.shape
    rep = nheads // B.shape[2]
    xf, dtf = x.float(), dt.float()
    if dt_bias is not None:
        dtf = dtf + dt_bias.float()
    if dt_softplus:
        dtf = torch.nn.functional.softplus(dtf)
    dtf = dtf.clamp(min=dt_limit[0], max=dt_limit[1])
    Bh = B.float().repeat_interleave(rep, dim=2)  # (batch, seqlen, nheads, dstate)
    Ch = C.float().repeat_interleave(rep, dim=2)
    dA = torch.exp(dtf * A.float())  # (batch, seqlen, nheads)
    h = (initial_states.float().clone() if initial_states is not None
         else x.new_zeros(batch, nheads, headdim, B.shape[3], dtype=torch.float32))
    ys = []
    for t in range(seqlen):
        h = h * dA[:, t, :, None, None] + (dtf[:, t, :, None] * xf[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append((h * Ch[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, dim=1) if ys else xf.new_zeros(batch, 0, nheads, headdim)
    if D is not None:
        y = y + xf * (D.float()[:, None] if D.dim() == 1 else D.float())
    if z is not None:
        y = y * torch.nn.functional.silu(z.float())
    return y.to(x.dtype), h
