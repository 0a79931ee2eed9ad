"""Selective scan forward (Mamba-1 prefill) with the positions scanned in parallel inside a program: for grids
too small to fill the GPU (batch-1 prefill), one exponential per (channel, position, state) instead of the two
that `kernels/selective_scan.py`'s split scan pays (its pass 1 and pass 3 both discretise every position).

Shape glossary and arguments: as `kernels/selective_scan.py` (mamba-ssm `selective_scan_fn` layout), whose
`selective_scan` calls this for seqlen-contiguous inputs on small grids (`LaunchConfig.par_len`) and whose
`selective_scan_ref` is the reference it is tested against (this module does not import that one: no cycle; the argument checks are kernels/scan_args.py).

    dt_t = softplus(delta_t + delta_bias);   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t
    y_t  = <h_t, C_t> + D u_t;   y_t *= silu(z_t)

Design: one program owns BLOCK_D channels of one sequence and walks it in tiles of BLOCK_L positions. For each
state n (a static loop over the padded N) it forms the tile's (BLOCK_L, BLOCK_D) pairs (a_t, b_t) =
(exp(dt_t A_n), dt_t u_t B_t,n), folds the carried state into the first row (b_0 += a_0 h), and scans them
along the positions with `tl.associative_scan` under the first-order-recurrence operator
(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2) (Blelloch, "Prefix Sums and Their Applications", 1990; the same
pairs as mamba-ssm's block scan); h_t is the scanned b. y accumulates sum_n h C_n in registers; the tile's last
row is the next tile's carry. Positions past seqlen have dt = 0, so (a, b) = (1, 0) carries the state
through unchanged and the last row is always the true end state. The carries of the N states live in one
(BLOCK_N, BLOCK_D) tile (a row picked and replaced by masks: a static loop cannot index registers).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.scan_args import check_scan_args


@triton.jit
def _first_order(a1, b1, a2, b2):
    """(a1, b1) then (a2, b2): h -> a2 (a1 h + b1) + b2."""
    return a1 * a2, a2 * b1 + b2


@triton.jit(do_not_specialize_on_alignment=["dim"])
def _selective_scan_par_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, h0_ptr, out_ptr, hN_ptr,
    dim, seqlen, dstate,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l,
    s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
    s_z_b, s_z_d, s_z_l, s_o_b, s_o_d, s_o_l,
    DELTA_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    ALL_STATES: tl.constexpr = False,
):
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_l = tl.arange(0, BLOCK_L)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_nd = (offs_n < dstate)[:, None] & mask_d[None, :]
    nd = offs_d[None, :] * dstate + offs_n[:, None]  # (BLOCK_N, BLOCK_D) into (dim, dstate)
    At = tl.load(A_ptr + nd, mask=mask_nd, other=0.0).to(tl.float32) * 1.4426950408889634  # exp -> exp2
    if HAS_H0:
        carry = tl.load(h0_ptr + b * dim * dstate + nd, mask=mask_nd, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    if HAS_DELTA_BIAS:
        dbias = tl.load(delta_bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    first = (offs_l == 0)[:, None]
    last = (offs_l == BLOCK_L - 1)[:, None]
    for l0 in range(0, seqlen, BLOCK_L):
        pos = l0 + offs_l
        mask_l = pos < seqlen
        m2 = mask_l[:, None] & mask_d[None, :]
        u = tl.load(u_ptr + b * s_u_b + pos[:, None] * s_u_l + offs_d[None, :] * s_u_d, mask=m2, other=0.0)
        dt = tl.load(delta_ptr + b * s_dt_b + pos[:, None] * s_dt_l + offs_d[None, :] * s_dt_d, mask=m2, other=0.0)
        u = u.to(tl.float32)
        dt = dt.to(tl.float32)
        if HAS_DELTA_BIAS:
            dt += dbias[None, :]
        if DELTA_SOFTPLUS:
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        dt = tl.where(m2, dt, 0.0)  # past seqlen: (a, b) = (1, 0) keeps the state
        dtu = dt * u
        if ALL_STATES:  # one (BLOCK_L, BLOCK_N, BLOCK_D) scan for all states at once
            l3 = offs_l[:, None, None]
            mask_ln = mask_l[:, None] & (offs_n < dstate)[None, :]
            Bt = tl.load(B_ptr + b * s_B_b + offs_n[None, :] * s_B_n + pos[:, None] * s_B_l, mask=mask_ln, other=0.0)
            Ct = tl.load(C_ptr + b * s_C_b + offs_n[None, :] * s_C_n + pos[:, None] * s_C_l, mask=mask_ln, other=0.0)
            a = tl.exp2(dt[:, None, :] * At[None, :, :])
            bb = dtu[:, None, :] * Bt.to(tl.float32)[:, :, None]
            bb = tl.where(l3 == 0, bb + a * carry[None, :, :], bb)
            _, h = tl.associative_scan((a, bb), 0, _first_order)
            y = tl.sum(h * Ct.to(tl.float32)[:, :, None], axis=1)
            carry = tl.sum(tl.where(l3 == BLOCK_L - 1, h, 0.0), axis=0)
        else:  # a (BLOCK_L, BLOCK_D) scan per state
            y = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
            new_carry = carry
            for n in tl.static_range(BLOCK_N):
                row = (offs_n == n)[:, None]
                a_n = tl.sum(tl.where(row, At, 0.0), axis=0)  # (BLOCK_D,)
                h_n = tl.sum(tl.where(row, carry, 0.0), axis=0)
                mask_ln = mask_l & (offs_l * 0 + n < dstate)
                Bn = tl.load(B_ptr + b * s_B_b + n * s_B_n + pos * s_B_l, mask=mask_ln, other=0.0)
                Cn = tl.load(C_ptr + b * s_C_b + n * s_C_n + pos * s_C_l, mask=mask_ln, other=0.0)
                a = tl.exp2(dt * a_n[None, :])
                bb = dtu * Bn.to(tl.float32)[:, None]
                bb = tl.where(first, bb + a * h_n[None, :], bb)
                _, h = tl.associative_scan((a, bb), 0, _first_order)
                y += h * Cn.to(tl.float32)[:, None]
                h_last = tl.sum(tl.where(last, h, 0.0), axis=0)
                new_carry = tl.where(row, h_last[None, :], new_carry)
            carry = new_carry
        if HAS_D:
            y += u * Dv[None, :]
        if HAS_Z:
            zf = tl.load(z_ptr + b * s_z_b + pos[:, None] * s_z_l + offs_d[None, :] * s_z_d, mask=m2,
                         other=0.0).to(tl.float32)
            y *= zf * tl.sigmoid(zf)
        tl.store(out_ptr + b * s_o_b + pos[:, None] * s_o_l + offs_d[None, :] * s_o_d,
                 y.to(out_ptr.dtype.element_ty), mask=m2)
    tl.store(hN_ptr + b * dim * dstate + nd, carry, mask=mask_nd)


def selective_scan_par(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       initial_state=None, block_l: int = 64, block_d: int = 16, num_warps: int = 4,
                       all_states: bool = False):
    """Selective scan with the positions scanned in parallel inside each program (see the module docstring).
    u, delta [batch, dim, seqlen]; A [dim, dstate]; B, C [batch, dstate, seqlen]; returns (y [batch, dim, seqlen]
    in u's dtype, memory order [batch, seqlen, dim], last_state [batch, dim, dstate] fp32)."""
    check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    assert block_l >= 2 and block_l & (block_l - 1) == 0, "block_l must be a power of two >= 2"
    out = torch.empty(batch, seqlen, dim, device=u.device, dtype=u.dtype).transpose(1, 2)
    hN = torch.empty(batch, dim, dstate, device=u.device, dtype=torch.float32)
    zz = z if z is not None else u
    h0 = initial_state.contiguous() if initial_state is not None else None
    grid = (batch, triton.cdiv(dim, block_d))
    _selective_scan_par_kernel[grid](
        u, delta, A, B, C, D, z, delta_bias, h0, out, hN, dim, seqlen, dstate,
        *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *out.stride(),
        DELTA_SOFTPLUS=delta_softplus, HAS_D=D is not None, HAS_Z=z is not None,
        HAS_DELTA_BIAS=delta_bias is not None, HAS_H0=initial_state is not None, BLOCK_L=block_l,
        BLOCK_D=block_d, BLOCK_N=max(2, triton.next_power_of_2(dstate)), ALL_STATES=all_states, num_warps=num_warps)
    return out, hN
