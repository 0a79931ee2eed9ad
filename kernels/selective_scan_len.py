"""Selective scan forward (Mamba-1 prefill) reading seqlen-contiguous u, delta and z in place (mamba-ssm's
layout), without the copies to channels-contiguous that `kernels/selective_scan.py` makes for them
(`transpose_len`: 0.6 ms of 2.06 at B16 D4096 L2048 on an H100).

Shape glossary and arguments: as `kernels/selective_scan.py`, whose `selective_scan` calls this for
seqlen-contiguous inputs on grids it would not split (`LaunchConfig.len_tile`) and whose `selective_scan_ref`
is the reference it is tested against (this module does not import that one: no cycle; the argument checks are kernels/scan_args.py).

    dt_t = softplus(delta_t + delta_bias);   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t
    y_t  = <h_t, C_t> + D u_t;   y_t *= silu(z_t)

Design: as the channel-parallel scan (one program owns BLOCK_D channels of one sequence, one channel per
thread, its N states in that thread's registers, walked one position at a time), but u, delta and z come in
(BLOCK_D, P) tiles: each thread loads its channel's P consecutive positions as one vector (seqlen-contiguous
memory), the bias, softplus, dt * u, D skip and gate run on the whole tile, and the P positions are walked
in registers (`tl.static_range`: picking column p of a thread's own registers folds to a register move).
B and C come per position, shared by every lane (fp32 and states-contiguous after the wrapper's copy), y is
stored per tile (channels-contiguous, as out_proj wants it).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.scan_args import check_scan_args


@triton.jit(do_not_specialize_on_alignment=["dim"])
def _selective_scan_len_kernel(
    u_ptr, delta_ptr, At_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, h0_ptr, out_ptr, hN_ptr,
    dim, seqlen, dstate,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l,
    s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
    s_z_b, s_z_d, s_z_l, s_o_b, s_o_d, s_o_l,
    DELTA_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, P: tl.constexpr,
):
    # At is A transposed to (dstate, dim) and h0 is (batch, dstate, dim): channels contiguous, the layout of
    # the state tile (one channel per thread), as in kernels/selective_scan.py
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_p = tl.arange(0, P)
    mask_d = offs_d < dim
    mask_n = offs_n < dstate
    mask_nd = mask_n[:, None] & mask_d[None, :]
    At = tl.load(At_ptr + offs_n[:, None] * dim + offs_d[None, :], mask=mask_nd, other=0.0)
    At = At.to(tl.float32) * 1.4426950408889634  # exp -> exp2
    if HAS_H0:
        h = tl.load(h0_ptr + b * dstate * dim + offs_n[:, None] * dim + offs_d[None, :], mask=mask_nd, other=0.0)
        h = h.to(tl.float32)
    else:
        h = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    if HAS_DELTA_BIAS:
        dbias = tl.load(delta_bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_p = u_ptr + b * s_u_b + offs_d[:, None] * s_u_d
    dt_p = delta_ptr + b * s_dt_b + offs_d[:, None] * s_dt_d
    z_p = z_ptr + b * s_z_b + offs_d[:, None] * s_z_d if HAS_Z else u_p
    o_p = out_ptr + b * s_o_b + offs_d[:, None] * s_o_d
    B_p = B_ptr + b * s_B_b + offs_n * s_B_n
    C_p = C_ptr + b * s_C_b + offs_n * s_C_n
    for l0 in range(0, seqlen, P):
        pos = l0 + offs_p
        m = mask_d[:, None] & (pos < seqlen)[None, :]
        u = tl.load(u_p + pos[None, :] * s_u_l, mask=m, other=0.0).to(tl.float32)  # (BLOCK_D, P)
        dt = tl.load(dt_p + pos[None, :] * s_dt_l, mask=m, other=0.0).to(tl.float32)
        if HAS_DELTA_BIAS:
            dt += dbias[:, None]
        if DELTA_SOFTPLUS:
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        dt = tl.where(m, dt, 0.0)  # past seqlen: the state is kept (exp(0) = 1, no input)
        dtu = dt * u
        y = tl.zeros((BLOCK_D, P), dtype=tl.float32)
        for p in tl.static_range(P):
            col = (offs_p == p)[None, :]
            dt_l = tl.sum(tl.where(col, dt, 0.0), axis=1)  # (BLOCK_D,): column p of the thread's own registers
            dtu_l = tl.sum(tl.where(col, dtu, 0.0), axis=1)
            lc = tl.minimum(l0 + p, seqlen - 1)  # past seqlen: re-read the last position (its dt is 0 here)
            Bt = tl.load(B_p + lc * s_B_l, mask=mask_n, other=0.0).to(tl.float32)
            Ct = tl.load(C_p + lc * s_C_l, mask=mask_n, other=0.0).to(tl.float32)
            h = tl.exp2(dt_l[None, :] * At) * h + dtu_l[None, :] * Bt[:, None]
            y_l = tl.sum(h * Ct[:, None], axis=0)
            y = tl.where(col, y_l[:, None], y)
        if HAS_D:
            y += u * Dv[:, None]
        if HAS_Z:
            zf = tl.load(z_p + pos[None, :] * s_z_l, mask=m, other=0.0).to(tl.float32)
            y *= zf * tl.sigmoid(zf)
        tl.store(o_p + pos[None, :] * s_o_l, y.to(out_ptr.dtype.element_ty), mask=m)
    tl.store(hN_ptr + b * dim * dstate + offs_d[None, :] * dstate + offs_n[:, None], h, mask=mask_nd)


def selective_scan_len(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       initial_state=None, block_d: int = 64, num_warps: int = 2, p: int = 8):
    """Selective scan reading u, delta, z seqlen-contiguous in place (see the module docstring); any strides
    work, but u [batch, dim, seqlen] with stride(2) == 1 is what it is for. A [dim, dstate]; B, C [batch, dstate,
    seqlen]. Returns (y [batch, dim, seqlen] in u's dtype, memory order [batch, seqlen, dim], last_state
    [batch, dim, dstate] fp32)."""
    check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    assert p >= 1 and p & (p - 1) == 0, "p must be a power of two"
    out = torch.empty(batch, seqlen, dim, device=u.device, dtype=u.dtype).transpose(1, 2)
    hN = torch.empty(batch, dim, dstate, device=u.device, dtype=torch.float32)
    zz = z if z is not None else u
    At = A.t().contiguous()
    h0 = initial_state.transpose(1, 2).contiguous() if initial_state is not None else None  # (batch, dstate, dim)
    grid = (batch, triton.cdiv(dim, block_d))
    _selective_scan_len_kernel[grid](
        u, delta, At, B, C, D, z, delta_bias, h0, out, hN, dim, seqlen, dstate,
        *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *out.stride(),
        DELTA_SOFTPLUS=delta_softplus, HAS_D=D is not None, HAS_Z=z is not None,
        HAS_DELTA_BIAS=delta_bias is not None, HAS_H0=initial_state is not None, BLOCK_D=block_d,
        BLOCK_N=max(2, triton.next_power_of_2(dstate)), P=p, num_warps=num_warps)
    return out, hN
