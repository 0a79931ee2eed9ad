"""Selective scan forward (Mamba-1 prefill), fused: delta bias + softplus, discretisation, scan, C
contraction, D skip and z gating in one pass, returning y and the final fp32 state.

Shape glossary
    batch   sequences
    dim     channels (d_inner)
    seqlen  positions L
    dstate  state size N

Arguments (mamba-ssm `selective_scan_fn` layout; any strides)
    u, delta    (batch, dim, seqlen)   fp32/bf16/fp16
    A           (dim, dstate)          fp32 (negative reals)
    B, C        (batch, dstate, seqlen)
    D           (dim,) fp32 or None;   z (batch, dim, seqlen) or None;  delta_bias (dim,) fp32 or None
    initial_state (batch, dim, dstate) fp32 or None
Returns y (batch, dim, seqlen) in u's dtype, last_state (batch, dim, dstate) fp32.

    dt_t  = softplus(delta_t + delta_bias)
    h_t   = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t
    y_t   = <h_t, C_t> + D * u_t;   y_t *= silu(z_t)

Design: one program owns BLOCK_D channels of one sequence (or of one chunk of it, see `selective_scan`)
and walks it one position at a time. The (N, BLOCK_D) fp32 state lives in registers with the channels
across lanes and warps and the N states of a channel in one thread (A, and a start state, are loaded
channels-contiguous so that Triton's coalescing picks exactly that layout): discretisation, state update and
C contraction are in-thread, with no shuffle, barrier or shared memory in the loop (`python -m backend
kernel-aot` counts the sm_90 loop's instructions; `dim` is exempt from Triton's divisibility specialisation,
which had changed layouts inside the loop). Per position a thread loads its channel's u/delta/z (coalesced
across the warp) and the N values of B and C that every lane shares (B and C in fp32 with `bc_fp32`: no bf16
unpacking), and writes y; with PREFETCH = k the loads of position l + k are issued before position l's
arithmetic. Seqlen-contiguous inputs are copied to channels-contiguous first (`transpose_len`,
kernels/channels_last.py). Nothing of size (batch, dim, seqlen, dstate) reaches memory.

The N states are held as three tiles, [0, N/2), [N/2, 3N/4) and [3N/4, N): with POLY = 1 (or 2) the last
(last two) tiles' exponentials go through `_exp2_poly` on the FMA pipes instead of the MUFU (slower at every
shape measured, so POLY is 0). Measurements and earlier designs: kernels/README.md ("Design notes").
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.channels_last import channels_last
from kernels.launch import scan_config
from kernels.scan_args import (
    check_scan_args as _check,  # also imported from here by cpu_scan, selective_scan_train
)
from kernels.selective_scan_len import selective_scan_len
from kernels.selective_scan_par import selective_scan_par


@triton.jit
def _exp2_poly(x):
    """2**x in fp32 on the FMA and integer pipes instead of the special-function unit (MUFU), for |x| <= 125
    (clamped): 2^x = 2^k * 2^f with k = round(x), |f| <= 1/2, 2^f by a degree-5 polynomial (relative error
    7.5e-8, as `kernels/cpu_scan.py`'s `_exp2`). Why: the scan is bound by one exp2 per (channel, position,
    state) on the MUFU (16 per SM and clock on sm_90, against 128 FMAs); moving a quarter of them here
    balances the two pipes (issue 15)."""
    x = tl.minimum(tl.maximum(x, -125.0), 125.0)
    j = x + 12582912.0  # 1.5 * 2**23: the low bits of j are round(x)
    k = j.to(tl.int32, bitcast=True) - 0x4B400000
    f = x - (j - 12582912.0)
    p = 1.3276471e-3 * f + 9.6755410e-3
    p = p * f + 5.5507131e-2
    p = p * f + 2.4022120e-1
    p = p * f + 6.9314694e-1
    p = p * f + 1.0000001
    return (p.to(tl.int32, bitcast=True) + (k << 23)).to(tl.float32, bitcast=True)


@triton.jit
def _load_bc(B_p, C_p, offs, mask, l, s_B_n, s_B_l, s_C_n, s_C_l, STORE_Y: tl.constexpr, EVEN_N: tl.constexpr):
    """B and C of position l (in range) at the states `offs`; C only when y is stored. Masked only when the
    states do not fill BLOCK_N (a masked load costs a predicate and a zeroed register per vector)."""
    if EVEN_N:
        Bt = tl.load(B_p + offs * s_B_n + l * s_B_l)
    else:
        Bt = tl.load(B_p + offs * s_B_n + l * s_B_l, mask=mask, other=0.0)
    Ct = Bt
    if STORE_Y:
        if EVEN_N:
            Ct = tl.load(C_p + offs * s_C_n + l * s_C_l)
        else:
            Ct = tl.load(C_p + offs * s_C_n + l * s_C_l, mask=mask, other=0.0)
    return Bt, Ct


@triton.jit
def _load_pos(u_p, dt_p, B_p, C_p, z_p, l, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d, offs_d,
              offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y: tl.constexpr, HAS_Z: tl.constexpr,
              EVEN_D: tl.constexpr, EVEN_N: tl.constexpr):
    """Inputs of position l: u, delta, z (BLOCK_D,) and B, C for the three state tiles. A prefetch past the
    chunk (l >= l_end) reads position l_end - 1 again instead of masking: unmasked loads need no predicate and
    no zeroed register, and that value is never used. Channels are masked only when they do not fill BLOCK_D.
    z is only loaded when it
    is used (STORE_Y, HAS_Z); otherwise u stands in for it."""
    l = tl.minimum(l, l_end - 1)
    if EVEN_D:
        u = tl.load(u_p + l * s_u_l)
        dt = tl.load(dt_p + l * s_dt_l)
    else:
        u = tl.load(u_p + l * s_u_l, mask=mask_d, other=0.0)
        dt = tl.load(dt_p + l * s_dt_l, mask=mask_d, other=0.0)
    z = u
    if STORE_Y and HAS_Z:
        if EVEN_D:
            z = tl.load(z_p + l * s_z_l)
        else:
            z = tl.load(z_p + l * s_z_l, mask=mask_d, other=0.0)
    B1, C1 = _load_bc(B_p, C_p, offs_1, mask_1, l, s_B_n, s_B_l, s_C_n, s_C_l, STORE_Y, EVEN_N)
    B2, C2 = _load_bc(B_p, C_p, offs_2, mask_2, l, s_B_n, s_B_l, s_C_n, s_C_l, STORE_Y, EVEN_N)
    B3, C3 = _load_bc(B_p, C_p, offs_3, mask_3, l, s_B_n, s_B_l, s_C_n, s_C_l, STORE_Y, EVEN_N)
    return u, dt, z, B1, B2, B3, C1, C2, C3


@triton.jit
def _tile_step(h, A, dt, dtu, Bt, Ct, POLY: tl.constexpr, STORE_Y: tl.constexpr):
    """One position for a (rows, BLOCK_D) state tile: h = 2^(dt A) h + dt u B; returns (h, its part of y)."""
    x = dt[None, :] * A
    if POLY:
        e = _exp2_poly(x)
    else:
        e = tl.exp2(x)
    h = e * h + dtu[None, :] * Bt.to(tl.float32)[:, None]
    y = dt
    if STORE_Y:
        y = tl.sum(h * Ct.to(tl.float32)[:, None], axis=0)  # (BLOCK_D,), in-thread over the tile's states
    return h, y


# dim is not specialised on its divisibility by 16: when Triton knows it, A's loads vectorise four channels per
# thread and that layout, met by the others, adds 25 shared-memory round trips, 24 shuffles and 15 barriers
# to every position's 246 instructions on sm_90 (triton 3.6; `python -m backend kernel-aot`, issue 15).
@triton.jit(do_not_specialize_on_alignment=["dim"])
def _selective_scan_kernel(
    u_ptr, delta_ptr, At_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, h0_ptr, out_ptr, hN_ptr, dsum_ptr,
    dim, seqlen, dstate, chunk_len,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l,
    s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
    s_z_b, s_z_d, s_z_l, s_o_b, s_o_d, s_o_l,
    DELTA_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_DELTA_BIAS: tl.constexpr, HAS_H0: tl.constexpr, STORE_Y: tl.constexpr, STORE_H: tl.constexpr,
    PREFETCH: tl.constexpr, POLY: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    EVEN_D: tl.constexpr = False, EVEN_N: tl.constexpr = False, STORE_H_LAST: tl.constexpr = False,
):
    # program (b, d-block, chunk c) scans positions [c * chunk_len, (c + 1) * chunk_len). States (h0, hN)
    # and dsum are indexed by (b * n_chunks + c): with one chunk that is plain (batch, dim, dstate).
    # At is A transposed to (dstate, dim), channel-major: see the module docstring.
    # The BLOCK_N states are three tiles: [0, N/2), [N/2, 3N/4), [3N/4, N). POLY = 0: every exp2 on the MUFU;
    # 1: the last tile's through `_exp2_poly` (a quarter); 2: the last two tiles' (a half).
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    c = tl.program_id(2)
    bc = b * tl.num_programs(2) + c
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_1 = tl.arange(0, BLOCK_N // 2)
    offs_2 = BLOCK_N // 2 + tl.arange(0, BLOCK_N // 4)
    offs_3 = BLOCK_N // 2 + BLOCK_N // 4 + tl.arange(0, BLOCK_N // 4)
    mask_d = offs_d < dim
    mask_1, mask_2, mask_3 = offs_1 < dstate, offs_2 < dstate, offs_3 < dstate

    # A pre-scaled by log2(e) so the discretisation is one exp2 per (n, d)
    A1 = tl.load(At_ptr + offs_1[:, None] * dim + offs_d[None, :], mask=mask_1[:, None] & mask_d[None, :], other=0.0)
    A2 = tl.load(At_ptr + offs_2[:, None] * dim + offs_d[None, :], mask=mask_2[:, None] & mask_d[None, :], other=0.0)
    A3 = tl.load(At_ptr + offs_3[:, None] * dim + offs_d[None, :], mask=mask_3[:, None] & mask_d[None, :], other=0.0)
    A1 = A1.to(tl.float32) * 1.4426950408889634
    A2 = A2.to(tl.float32) * 1.4426950408889634
    A3 = A3.to(tl.float32) * 1.4426950408889634
    if HAS_DELTA_BIAS:
        dbias = tl.load(delta_bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    st_d = (bc * dim + offs_d[None, :]) * dstate  # (1, BLOCK_D) into (.., dim, dstate)
    if HAS_H0:
        # h0 is (.., dstate, dim), channels contiguous like At: a (dim, dstate) load vectorises over the states,
        # and that layout, met by the loop's, cost 6 barriers and 10 shared-memory ops per position on sm_90
        h0_d = bc * dstate * dim + offs_d[None, :]
        h1 = tl.load(h0_ptr + h0_d + offs_1[:, None] * dim, mask=mask_1[:, None] & mask_d[None, :], other=0.0)
        h2 = tl.load(h0_ptr + h0_d + offs_2[:, None] * dim, mask=mask_2[:, None] & mask_d[None, :], other=0.0)
        h3 = tl.load(h0_ptr + h0_d + offs_3[:, None] * dim, mask=mask_3[:, None] & mask_d[None, :], other=0.0)
        h1, h2, h3 = h1.to(tl.float32), h2.to(tl.float32), h3.to(tl.float32)
    else:
        h1 = tl.zeros((BLOCK_N // 2, BLOCK_D), dtype=tl.float32)
        h2 = tl.zeros((BLOCK_N // 4, BLOCK_D), dtype=tl.float32)
        h3 = tl.zeros((BLOCK_N // 4, BLOCK_D), dtype=tl.float32)
    dsum = tl.zeros((BLOCK_D,), dtype=tl.float32)

    l_start = c * chunk_len
    l_end = tl.minimum(l_start + chunk_len, seqlen)
    u_p = u_ptr + b * s_u_b + offs_d * s_u_d
    dt_p = delta_ptr + b * s_dt_b + offs_d * s_dt_d
    z_p = z_ptr + b * s_z_b + offs_d * s_z_d if HAS_Z else u_p
    o_p = out_ptr + b * s_o_b + offs_d * s_o_d
    B_p = B_ptr + b * s_B_b
    C_p = C_ptr + b * s_C_b
    # PREFETCH = k: position l's inputs are loaded k iterations ahead (the _p1, _p2 values)
    if PREFETCH >= 1:
        u_p1, dt_p1, z_p1, B1_p1, B2_p1, B3_p1, C1_p1, C2_p1, C3_p1 = _load_pos(
            u_p, dt_p, B_p, C_p, z_p, l_start, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d,
            offs_d, offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y, HAS_Z, EVEN_D, EVEN_N)
    if PREFETCH >= 2:
        u_p2, dt_p2, z_p2, B1_p2, B2_p2, B3_p2, C1_p2, C2_p2, C3_p2 = _load_pos(
            u_p, dt_p, B_p, C_p, z_p, l_start + 1, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d,
            offs_d, offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y, HAS_Z, EVEN_D, EVEN_N)
    for l in range(l_start, l_end):
        if PREFETCH == 0:
            u, dt, z, B1, B2, B3, C1, C2, C3 = _load_pos(
                u_p, dt_p, B_p, C_p, z_p, l, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d,
                offs_d, offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y, HAS_Z, EVEN_D, EVEN_N)
        elif PREFETCH == 1:
            u, dt, z, B1, B2, B3, C1, C2, C3 = u_p1, dt_p1, z_p1, B1_p1, B2_p1, B3_p1, C1_p1, C2_p1, C3_p1
            u_p1, dt_p1, z_p1, B1_p1, B2_p1, B3_p1, C1_p1, C2_p1, C3_p1 = _load_pos(
                u_p, dt_p, B_p, C_p, z_p, l + 1, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d,
                offs_d, offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y, HAS_Z, EVEN_D, EVEN_N)
        else:
            u, dt, z, B1, B2, B3, C1, C2, C3 = u_p1, dt_p1, z_p1, B1_p1, B2_p1, B3_p1, C1_p1, C2_p1, C3_p1
            u_p1, dt_p1, z_p1, B1_p1, B2_p1, B3_p1, C1_p1, C2_p1, C3_p1 = \
                u_p2, dt_p2, z_p2, B1_p2, B2_p2, B3_p2, C1_p2, C2_p2, C3_p2
            u_p2, dt_p2, z_p2, B1_p2, B2_p2, B3_p2, C1_p2, C2_p2, C3_p2 = _load_pos(
                u_p, dt_p, B_p, C_p, z_p, l + 2, l_end, s_u_l, s_dt_l, s_B_n, s_B_l, s_C_n, s_C_l, s_z_l, mask_d,
                offs_d, offs_1, offs_2, offs_3, mask_1, mask_2, mask_3, STORE_Y, HAS_Z, EVEN_D, EVEN_N)
        u = u.to(tl.float32)
        dt = dt.to(tl.float32)
        if HAS_DELTA_BIAS:
            dt += dbias
        if DELTA_SOFTPLUS:
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        dt = tl.where(mask_d, dt, 0.0)
        dtu = dt * u
        h1, y1 = _tile_step(h1, A1, dt, dtu, B1, C1, False, STORE_Y)
        h2, y2 = _tile_step(h2, A2, dt, dtu, B2, C2, POLY >= 2, STORE_Y)
        h3, y3 = _tile_step(h3, A3, dt, dtu, B3, C3, POLY >= 1, STORE_Y)
        if STORE_Y:
            y = y1 + y2 + y3
            if HAS_D:
                y += u * Dv
            if HAS_Z:
                zf = z.to(tl.float32)
                y *= zf * tl.sigmoid(zf)
            tl.store(o_p + l * s_o_l, y.to(out_ptr.dtype.element_ty), mask=mask_d)
        else:
            dsum += dt
    if STORE_H:
        tl.store(hN_ptr + st_d + offs_1[:, None], h1, mask=mask_1[:, None] & mask_d[None, :])
        tl.store(hN_ptr + st_d + offs_2[:, None], h2, mask=mask_2[:, None] & mask_d[None, :])
        tl.store(hN_ptr + st_d + offs_3[:, None], h3, mask=mask_3[:, None] & mask_d[None, :])
    if STORE_H_LAST:  # pass 3 of a split scan: the last chunk ends on the sequence's final state
        if c == tl.num_programs(2) - 1:
            st_b = (b * dim + offs_d[None, :]) * dstate
            tl.store(hN_ptr + st_b + offs_1[:, None], h1, mask=mask_1[:, None] & mask_d[None, :])
            tl.store(hN_ptr + st_b + offs_2[:, None], h2, mask=mask_2[:, None] & mask_d[None, :])
            tl.store(hN_ptr + st_b + offs_3[:, None], h3, mask=mask_3[:, None] & mask_d[None, :])
    if not STORE_Y:
        tl.store(dsum_ptr + bc * dim + offs_d, dsum, mask=mask_d)


@triton.jit
def _chunk_state_kernel(
    hloc_ptr, dsum_ptr, A_ptr, h0_ptr, hstart_ptr,
    dim, dstate, n_chunks,
    HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # sequential over chunks, elementwise over (d, n): the start state of each of the n_chunks chunks from the
    # local end states and dt sums of the first n_chunks - 1 (pass 1 skips the last chunk, whose end state
    # pass 3 writes):  start_0 = h0;  start_{c+1} = exp(A * sum_c dt) * start_c + hloc_c
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n < dstate)[None, :]
    dn = offs_d[:, None] * dstate + offs_n[None, :]
    nd = offs_n[None, :] * dim + offs_d[:, None]  # hstart is (.., dstate, dim): what the scan's h0 load reads
    A = tl.load(A_ptr + dn, mask=mask_dn, other=0.0).to(tl.float32) * 1.4426950408889634
    if HAS_H0:
        h = tl.load(h0_ptr + b * dim * dstate + dn, mask=mask_dn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    tl.store(hstart_ptr + b * n_chunks * dim * dstate + nd, h, mask=mask_dn)
    # chunk c + 1's inputs are loaded before chunk c's update (launched only for n_chunks >= 2): the walk is a
    # chain of n_chunks - 1 steps on few programs, so each step should not wait for its own loads
    ds_next = tl.load(dsum_ptr + b * (n_chunks - 1) * dim + offs_d, mask=mask_d, other=0.0)
    hl_next = tl.load(hloc_ptr + b * (n_chunks - 1) * dim * dstate + dn, mask=mask_dn, other=0.0)
    for c in range(0, n_chunks - 1):
        ds, hl = ds_next, hl_next
        bl = b * (n_chunks - 1) + tl.minimum(c + 1, n_chunks - 2)  # the last step re-reads its own (unused)
        ds_next = tl.load(dsum_ptr + bl * dim + offs_d, mask=mask_d, other=0.0)
        hl_next = tl.load(hloc_ptr + bl * dim * dstate + dn, mask=mask_dn, other=0.0)
        h = tl.exp2(A * ds[:, None]) * h + hl
        tl.store(hstart_ptr + (b * n_chunks + c + 1) * dim * dstate + nd, h, mask=mask_dn)


def _n_chunks(batch: int, dim: int, seqlen: int, cfg) -> int:
    """How many sequence chunks to scan in parallel: 1 when batch x channel blocks already fill the GPU
    (cfg.split_below, or cfg.min_programs when that is 0), else enough for cfg.min_programs programs (batch-1
    prefill), each chunk at least cfg.chunk_min positions."""
    programs = batch * triton.cdiv(dim, cfg.block_d)
    below = cfg.split_below or cfg.min_programs
    if not cfg.min_programs or programs >= below or seqlen < 2 * cfg.chunk_min:
        return 1
    return max(1, min(triton.cdiv(cfg.min_programs, programs), seqlen // cfg.chunk_min))


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None):
    """Triton selective scan forward; see the module docstring. Returns (y, last_state fp32).

    When batch x channel blocks are too few to fill the GPU, the sequence is split into chunks scanned in
    parallel: pass 1 scans each chunk but the last from a zero state (local end state + sum of dt), pass 2
    walks the chunks to get each chunk's true start state, pass 3 rescans each chunk from it and writes y (and,
    from the last chunk, the final state)."""
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    if seqlen == 0:  # nothing to scan (and no position for the kernel's prefetch to read)
        hN = initial_state.float().clone() if initial_state is not None else u.new_zeros(batch, dim, dstate, dtype=torch.float32)
        return u.new_empty(batch, 0, dim).transpose(1, 2), hN
    cfg = scan_config(dstate, u.device, batch, dim)
    n_chunks = _n_chunks(batch, dim, seqlen, cfg)
    len_contig = u.stride(2) == 1 and dim > 1  # mamba-ssm's layout
    if cfg.par_len and len_contig and n_chunks > 1:
        # a grid too small to fill the GPU: scan the positions in parallel inside each program (one exp per
        # element; a split pays two)
        bl, bd, nw = cfg.par_len
        return selective_scan_par(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, block_l=bl,
                                  block_d=bd, num_warps=nw)
    use_len = bool(cfg.len_tile) and len_contig and n_chunks == 1  # read u, delta, z in place (no transposes)
    if cfg.transpose_len and len_contig and not use_len:  # one coalesced copy (kernels/channels_last.py) costs
        # less than per-position loads that each touch 32 cache lines per warp (issue 15)
        u, delta = channels_last(u), channels_last(delta)
        z = channels_last(z) if z is not None else None
    chunk_len = triton.cdiv(triton.cdiv(seqlen, n_chunks), 16) * 16
    n_chunks = triton.cdiv(seqlen, chunk_len) if seqlen else 1
    if cfg.bc_fp32 and (n_chunks == 1 or cfg.bc_fp32_split or B.stride(1) != 1 or C.stride(1) != 1):
        # (batch, seqlen, dstate) fp32: one vector load per position, no bf16 unpacking (see scan_config)
        B, C = (t.transpose(1, 2).to(torch.float32, memory_format=torch.contiguous_format).transpose(1, 2)
                for t in (B, C))
    if use_len:
        return selective_scan_len(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                  block_d=cfg.block_d, num_warps=cfg.num_warps, p=cfg.len_tile)
    # y in (batch, seqlen, dim) memory order, viewed as (batch, dim, seqlen): what out_proj wants next
    out = torch.empty(batch, seqlen, dim, device=u.device, dtype=u.dtype).transpose(1, 2)
    hN = torch.empty(batch, dim, dstate, device=u.device, dtype=torch.float32)
    zz = z if z is not None else u
    strides = (*u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *out.stride())
    flags = dict(DELTA_SOFTPLUS=delta_softplus, HAS_D=D is not None, HAS_Z=z is not None,
                 HAS_DELTA_BIAS=delta_bias is not None, PREFETCH=cfg.prefetch, POLY=cfg.poly, BLOCK_D=cfg.block_d,
                 BLOCK_N=cfg.block_n, EVEN_D=dim % cfg.block_d == 0, EVEN_N=dstate == cfg.block_n,
                 num_warps=cfg.num_warps)
    At = A.t().contiguous()  # (dstate, dim): 64 KiB per 1k channels at N = 16, one copy per call
    grid = (batch, triton.cdiv(dim, cfg.block_d), n_chunks)
    if n_chunks == 1:
        h0 = initial_state.transpose(1, 2).contiguous() if initial_state is not None else None  # (batch, dstate, dim)
        _selective_scan_kernel[grid](
            u, delta, At, B, C, D, z, delta_bias, h0, out, hN, None,
            dim, seqlen, dstate, max(seqlen, 1), *strides,
            HAS_H0=initial_state is not None, STORE_Y=True, STORE_H=True, **flags)
        return out, hN
    # pass 1 over the first n_chunks - 1 chunks (the last one's end state comes out of pass 3)
    # one allocation for the split's three buffers (a host-side cost that shows at batch-1 sizes)
    n_loc, n_dsum = batch * (n_chunks - 1) * dim * dstate, batch * (n_chunks - 1) * dim
    ws = torch.empty(n_loc + n_dsum + batch * n_chunks * dstate * dim, device=u.device, dtype=torch.float32)
    hloc = ws[:n_loc].view(batch, n_chunks - 1, dim, dstate)
    dsum = ws[n_loc:n_loc + n_dsum].view(batch, n_chunks - 1, dim)
    hstart = ws[n_loc + n_dsum:].view(batch, n_chunks, dstate, dim)
    _selective_scan_kernel[(batch, triton.cdiv(dim, cfg.block_d), n_chunks - 1)](
        u, delta, At, B, C, D, z, delta_bias, None, out, hloc, dsum,
        dim, seqlen, dstate, chunk_len, *strides, HAS_H0=False, STORE_Y=False, STORE_H=True, **flags)
    _chunk_state_kernel[(batch, triton.cdiv(dim, cfg.block_d))](
        hloc, dsum, A, initial_state, hstart, dim, dstate, n_chunks,
        HAS_H0=initial_state is not None, BLOCK_D=cfg.block_d, BLOCK_N=cfg.block_n, num_warps=cfg.num_warps)
    _selective_scan_kernel[grid](
        u, delta, At, B, C, D, z, delta_bias, hstart, out, hN, None,
        dim, seqlen, dstate, chunk_len, *strides, HAS_H0=True, STORE_Y=True, STORE_H=False, STORE_H_LAST=True,
        **flags)
    return out, hN


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None,
                       chunk: int = 256):
    """PyTorch reference, same signature. Sequential over L inside chunks of `chunk` positions, so the
    largest temporary is (batch, dim, chunk, dstate) rather than (batch, dim, seqlen, dstate)."""
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, seqlen = u.shape
    uf, dt = u.float(), delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = torch.nn.functional.softplus(dt)
    h = (initial_state.float().clone() if initial_state is not None
         else torch.zeros(batch, dim, A.shape[1], device=u.device, dtype=torch.float32))
    Af, Bf, Cf = A.float(), B.float(), C.float()
    ys = []
    for c0 in range(0, seqlen, chunk):
        sl = slice(c0, min(seqlen, c0 + chunk))
        dA = torch.exp(dt[:, :, sl, None] * Af[None, :, None, :])  # (batch, dim, chunk, dstate)
        dBu = (dt[:, :, sl] * uf[:, :, sl])[..., None] * Bf[:, None, :, sl].transpose(2, 3)
        for i in range(dA.shape[2]):
            h = dA[:, :, i] * h + dBu[:, :, i]
            ys.append((h * Cf[:, None, :, c0 + i]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else uf.new_zeros(batch, dim, 0)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * torch.nn.functional.silu(z.float())
    return y.to(u.dtype), h
