"""Selective scan for *training* (Mamba-1): the fused forward of `kernels.selective_scan` plus a Triton
backward, wrapped in a `torch.autograd.Function`. Zero initial state, no final state returned.

Shape glossary
    batch   sequences
    dim     channels (d_inner)
    seqlen  positions L
    dstate  state size N
    n_tiles ceil(seqlen / BLOCK_L): the forward saves the scan state at the start of every tile

Arguments (mamba-ssm `selective_scan_fn` layout; any strides)
    u, delta, z (batch, dim, seqlen)   fp32/bf16/fp16 (z optional)
    A           (dim, dstate)          fp32 (negative reals)
    B, C        (batch, dstate, seqlen)  (variable B/C, one group)
    D, delta_bias (dim,) fp32 or None
Returns y (batch, dim, seqlen) in u's dtype, differentiable w.r.t. u, delta, A, B, C, D, z, delta_bias.

    dt_t  = softplus(delta_t + delta_bias)
    h_t   = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t            (h_{-1} = 0)
    y_t   = <h_t, C_t> + D * u_t;   out_t = y_t * silu(z_t)

Design (mamba-ssm's CUDA backward, in Triton). Forward: one program owns BLOCK_D channels of one sequence
and walks it in tiles of BLOCK_L positions exactly as `selective_scan` does, and also stores the
(BLOCK_D, N) state at the start of every tile: hstart (batch, dim, n_tiles, dstate) fp32, 1/BLOCK_L of the
(batch, dim, seqlen, dstate) states. Backward: the same programs walk the tiles in reverse. Per tile they
recompute the tile's states in registers from its saved start state (same associative scan as the
forward), then run the reverse recurrence for the state gradient

    g_t = dL/dh_t = C_t * dy_t + exp(dt_{t+1} A) * g_{t+1},   dy_t = dout_t * silu(z_t)

as a reverse associative scan over (BLOCK_L, BLOCK_D, N) register tiles. Its elements carry (P, Q, a):
a segment maps w (the gradient passed back into the segment from its right, w = exp(dt A) g of the
next position) to g at its first position, g = Q + P * w, and a is exp(dt A) at its first position, so
no shifted load of dt is needed. From g and the recomputed h every gradient is a local product:
    du_t     = dt_t * sum_n g B_t + D dy_t
    ddt_t    = sum_n g (A (h_t - dt_t B_t u_t) + B_t u_t)     (A h_{t-1} exp(dt A) = A (h_t - dBu_t))
    ddelta_t = ddt_t * sigmoid(delta_t + bias)  (softplus)  ; ddelta_bias = sum_t ddelta_t
    dA       = sum_t g dt_t (h_t - dBu_t)   (per program, summed over batch in torch)
    dB_t     = sum_d g dt_t u_t ; dC_t = sum_d dy_t h_t  (per channel-block partials
               (n_dblocks, batch, dstate, seqlen) fp32, summed in torch: deterministic, no atomics)
    dD       = sum_t dy_t u_t ; dz_t = dout_t * y_t * silu'(z_t)
Everything accumulates in fp32; du/ddelta/dz are written in their inputs' dtypes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import LaunchConfig, target_of
from kernels.selective_scan import _check, selective_scan_ref

LOG2E = 1.4426950408889634


@triton.jit
def _first_order(a1, b1, a2, b2):
    # compose h -> a1*h + b1 then h -> a2*h + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _rev_combine(p_r, q_r, a_r, p_l, q_l, a_l):
    # reverse scan: the first operand is the segment later in the sequence (R), the second the one before
    # it (L), as in "flip, scan, flip". g_first(L) = Q_L + P_L * a_R * g_first(R) and g_first(R) = Q_R + P_R w.
    pa = p_l * a_r
    return pa * p_r, q_l + pa * q_r, a_l


@triton.jit
def _load_tile(u_ptr, delta_ptr, B_ptr, C_ptr, b, ls, offs_d, offs_n, mask_d, mask_n, seqlen, dbias,
               s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l, s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
               DELTA_SOFTPLUS: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr):
    """One tile's inputs in fp32: u, the pre-softplus delta (+ bias), dt (zero past the end, so dA = 1 and
    dBu = 0 there), B and C, with the (BLOCK_L, BLOCK_D) and (BLOCK_L, N) masks. Shared by forward and
    backward, which must see the same dt."""
    mask_l = ls < seqlen
    mask_ld = mask_l[:, None] & mask_d[None, :]
    mask_ln = mask_l[:, None] & mask_n[None, :]
    u = tl.load(u_ptr + b * s_u_b + ls[:, None] * s_u_l + offs_d[None, :] * s_u_d,
                mask=mask_ld, other=0.0).to(tl.float32)
    pre = tl.load(delta_ptr + b * s_dt_b + ls[:, None] * s_dt_l + offs_d[None, :] * s_dt_d,
                  mask=mask_ld, other=0.0).to(tl.float32)
    if HAS_DELTA_BIAS:
        pre += dbias[None, :]
    if DELTA_SOFTPLUS:
        dt = tl.where(pre <= 20.0, tl.log(1.0 + tl.exp(pre)), pre)
    else:
        dt = pre
    dt = tl.where(mask_ld, dt, 0.0)
    Bt = tl.load(B_ptr + b * s_B_b + ls[:, None] * s_B_l + offs_n[None, :] * s_B_n,
                 mask=mask_ln, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b * s_C_b + ls[:, None] * s_C_l + offs_n[None, :] * s_C_n,
                 mask=mask_ln, other=0.0).to(tl.float32)
    return u, pre, dt, Bt, Ct, mask_ld, mask_ln


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, out_ptr, hs_ptr,
    dim, seqlen, dstate, n_tiles,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l,
    s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
    s_z_b, s_z_d, s_z_l, s_o_b, s_o_d, s_o_l,
    DELTA_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # program (b, d-block) scans the whole sequence from a zero state, storing the start state of each tile
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    mask_n = offs_n < dstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * dstate + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A = A * 1.4426950408889634
    dbias = tl.zeros((BLOCK_D,), dtype=tl.float32)  # read only with HAS_DELTA_BIAS
    if HAS_DELTA_BIAS:
        dbias = tl.load(delta_bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    hs_off = ((b * dim + offs_d[:, None]) * n_tiles) * dstate + offs_n[None, :]
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    is_last = (offs_l == BLOCK_L - 1)[:, None, None]
    for t in range(0, n_tiles):
        tl.store(hs_ptr + hs_off + t * dstate, h, mask=mask_dn)
        ls = t * BLOCK_L + offs_l
        u, _, dt, Bt, Ct, mask_ld, _ = _load_tile(
            u_ptr, delta_ptr, B_ptr, C_ptr, b, ls, offs_d, offs_n, mask_d, mask_n, seqlen, dbias,
            s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l, s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
            DELTA_SOFTPLUS, HAS_DELTA_BIAS)
        dA = tl.exp2(dt[:, :, None] * A[None, :, :])  # (BLOCK_L, BLOCK_D, BLOCK_N)
        dBu = (dt * u)[:, :, None] * Bt[:, None, :]
        a_cum, b_cum = tl.associative_scan((dA, dBu), axis=0, combine_fn=_first_order)
        hs = a_cum * h[None, :, :] + b_cum
        h = tl.sum(tl.where(is_last, hs, 0.0), axis=0)
        y = tl.sum(hs * Ct[:, None, :], axis=2)  # (BLOCK_L, BLOCK_D)
        if HAS_D:
            y += u * Dv[None, :]
        if HAS_Z:
            z = tl.load(z_ptr + b * s_z_b + ls[:, None] * s_z_l + offs_d[None, :] * s_z_d,
                        mask=mask_ld, other=0.0).to(tl.float32)
            y *= z * tl.sigmoid(z)
        tl.store(out_ptr + b * s_o_b + ls[:, None] * s_o_l + offs_d[None, :] * s_o_d,
                 y.to(out_ptr.dtype.element_ty), mask=mask_ld)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, dout_ptr, hs_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    batch, dim, seqlen, dstate, n_tiles,
    s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l,
    s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
    s_z_b, s_z_d, s_z_l, s_do_b, s_do_d, s_do_l,
    s_du_b, s_du_d, s_du_l, s_ddt_b, s_ddt_d, s_ddt_l, s_dz_b, s_dz_d, s_dz_l,
    DELTA_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # program (b, d-block) walks the tiles from the last to the first. Outputs:
    #   du, ddelta, dz like u; dA, dD, dbias per (b, d) (summed over batch in torch);
    #   dB, dC partials (n_dblocks, batch, dstate, seqlen) contiguous (summed over d-blocks in torch)
    b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    mask_n = offs_n < dstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    An = tl.load(A_ptr + offs_d[:, None] * dstate + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A2 = An * 1.4426950408889634
    dbias = tl.zeros((BLOCK_D,), dtype=tl.float32)  # read only with HAS_DELTA_BIAS
    if HAS_DELTA_BIAS:
        dbias = tl.load(delta_bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    hs_off = ((b * dim + offs_d[:, None]) * n_tiles) * dstate + offs_n[None, :]
    part = (pid_d.to(tl.int64) * batch + b) * dstate * seqlen  # start of this program's dB/dC partial rows
    w = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # gradient passed back into the tile from its right
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    is_first = (offs_l == 0)[:, None, None]
    ones = tl.full((BLOCK_L, BLOCK_D, BLOCK_N), 1.0, tl.float32)
    for i in range(0, n_tiles):
        t = n_tiles - 1 - i
        ls = t * BLOCK_L + offs_l
        u, pre, dt, Bt, Ct, mask_ld, mask_ln = _load_tile(
            u_ptr, delta_ptr, B_ptr, C_ptr, b, ls, offs_d, offs_n, mask_d, mask_n, seqlen, dbias,
            s_u_b, s_u_d, s_u_l, s_dt_b, s_dt_d, s_dt_l, s_B_b, s_B_n, s_B_l, s_C_b, s_C_n, s_C_l,
            DELTA_SOFTPLUS, HAS_DELTA_BIAS)
        h0 = tl.load(hs_ptr + hs_off + t * dstate, mask=mask_dn, other=0.0)
        # recompute the tile's states
        dA = tl.exp2(dt[:, :, None] * A2[None, :, :])
        dtu = dt * u
        dBu = dtu[:, :, None] * Bt[:, None, :]
        a_cum, b_cum = tl.associative_scan((dA, dBu), axis=0, combine_fn=_first_order)
        hs = a_cum * h0[None, :, :] + b_cum
        dout = tl.load(dout_ptr + b * s_do_b + ls[:, None] * s_do_l + offs_d[None, :] * s_do_d,
                       mask=mask_ld, other=0.0).to(tl.float32)
        if HAS_Z:
            z = tl.load(z_ptr + b * s_z_b + ls[:, None] * s_z_l + offs_d[None, :] * s_z_d,
                        mask=mask_ld, other=0.0).to(tl.float32)
            sig = tl.sigmoid(z)
            y = tl.sum(hs * Ct[:, None, :], axis=2)
            if HAS_D:
                y += u * Dv[None, :]
            dz = dout * y * sig * (1.0 + z * (1.0 - sig))
            tl.store(dz_ptr + b * s_dz_b + ls[:, None] * s_dz_l + offs_d[None, :] * s_dz_d,
                     dz.to(dz_ptr.dtype.element_ty), mask=mask_ld)
            dy = dout * z * sig
        else:
            dy = dout
        # reverse recurrence for g = dL/dh
        beta = dy[:, :, None] * Ct[:, None, :]
        P, Q, _ = tl.associative_scan((ones, beta, dA), axis=0, combine_fn=_rev_combine, reverse=True)
        g = P * w[None, :, :] + Q
        w = tl.sum(tl.where(is_first, dA * g, 0.0), axis=0)
        hprev = hs - dBu  # exp(dt A) h_{t-1}
        gh = g * hprev
        gB = tl.sum(g * Bt[:, None, :], axis=2)  # (BLOCK_L, BLOCK_D)
        ddt = tl.sum(gh * An[None, :, :], axis=2) + gB * u
        du = dt * gB
        if HAS_D:
            du += Dv[None, :] * dy
            dD_acc += tl.sum(dy * u, axis=0)
        dA_acc += tl.sum(gh * dt[:, :, None], axis=0)
        dBp = tl.sum(g * dtu[:, :, None], axis=1)  # (BLOCK_L, BLOCK_N)
        dCp = tl.sum(dy[:, :, None] * hs, axis=1)
        if DELTA_SOFTPLUS:
            ddt = ddt * tl.where(pre <= 20.0, tl.sigmoid(pre), 1.0)
        ddt = tl.where(mask_ld, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=0)
        tl.store(du_ptr + b * s_du_b + ls[:, None] * s_du_l + offs_d[None, :] * s_du_d,
                 du.to(du_ptr.dtype.element_ty), mask=mask_ld)
        tl.store(ddelta_ptr + b * s_ddt_b + ls[:, None] * s_ddt_l + offs_d[None, :] * s_ddt_d,
                 ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_ld)
        p_off = part + offs_n[None, :] * seqlen + ls[:, None]
        tl.store(dB_ptr + p_off, dBp, mask=mask_ln)
        tl.store(dC_ptr + p_off, dCp, mask=mask_ln)
    bd = b * dim + offs_d
    tl.store(dA_ptr + bd[:, None] * dstate + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + bd, dD_acc, mask=mask_d)
    if HAS_DELTA_BIAS:
        tl.store(dbias_ptr + bd, dbias_acc, mask=mask_d)


def train_config(dstate: int, device) -> tuple[LaunchConfig, LaunchConfig]:
    """(forward, backward) launch configs. Both walk the same BLOCK_L tiles (the saved tile-start states
    are the forward's). The backward holds ~10 (BLOCK_L, BLOCK_D, N) fp32 tiles live: 16-position tiles,
    4 channels and one warp per 16 states. Chosen from a one-off H200 sweep that was not recorded (B8 D512
    L1024 N16 bf16: it beat the forward's 8 channels x 4 warps and 32-position tiles; a later run of the same
    config timed differently, so re-measure before quoting a number)."""
    n = max(16, triton.next_power_of_2(dstate))
    if target_of(device) == "cpu":  # interpreter: small tiles so that the tests cross tile and block edges
        cfg = LaunchConfig(num_warps=4, block_d=16, block_l=8, block_n=n)
        return cfg, cfg
    # 8 channels x 16 states over 4 warps (2 wavefronts of 64 lanes on AMD), N across lanes
    fwd = LaunchConfig(num_warps=2 if target_of(device) == "hip" else 4, block_d=8, block_l=16, block_n=n)
    bwd = LaunchConfig(num_warps=max(1, min(4, n // 16)), block_d=4, block_l=16, block_n=n)
    return fwd, bwd


def _fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    cfg, _ = train_config(dstate, u.device)
    n_tiles = triton.cdiv(seqlen, cfg.block_l)
    out = torch.empty(batch, seqlen, dim, device=u.device, dtype=u.dtype).transpose(1, 2)
    hstart = torch.empty(batch, dim, n_tiles, dstate, device=u.device, dtype=torch.float32)
    if seqlen == 0:
        return out, hstart
    zz = z if z is not None else u
    _fwd_kernel[(batch, triton.cdiv(dim, cfg.block_d))](
        u, delta, A, B, C, D, z, delta_bias, out, hstart, dim, seqlen, dstate, n_tiles,
        *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *out.stride(),
        DELTA_SOFTPLUS=delta_softplus, HAS_D=D is not None, HAS_Z=z is not None,
        HAS_DELTA_BIAS=delta_bias is not None, BLOCK_D=cfg.block_d, BLOCK_L=cfg.block_l,
        BLOCK_N=cfg.block_n, num_warps=cfg.num_warps)
    return out, hstart


def _bwd(dout, u, delta, A, B, C, D, z, delta_bias, hstart, delta_softplus):
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    _, cfg = train_config(dstate, u.device)
    n_tiles = hstart.shape[2]
    n_dblocks = triton.cdiv(dim, cfg.block_d)
    dev = u.device

    def like(t):  # position-major, as the forward's y
        return torch.empty(batch, seqlen, dim, device=dev, dtype=t.dtype).transpose(1, 2)

    du, ddelta = like(u), like(delta)
    dz = like(z) if z is not None else None
    dA = torch.empty(batch, dim, dstate, device=dev, dtype=torch.float32)
    dB = torch.empty(n_dblocks, batch, dstate, seqlen, device=dev, dtype=torch.float32)
    dC = torch.empty(n_dblocks, batch, dstate, seqlen, device=dev, dtype=torch.float32)
    dD = torch.empty(batch, dim, device=dev, dtype=torch.float32) if D is not None else None
    dbias = torch.empty(batch, dim, device=dev, dtype=torch.float32) if delta_bias is not None else None
    if seqlen > 0:
        zz, dzz = (z, dz) if z is not None else (u, du)
        _bwd_kernel[(batch, n_dblocks)](
            u, delta, A, B, C, D, z, delta_bias, dout, hstart,
            du, ddelta, dz, dA, dB, dC, dD, dbias,
            batch, dim, seqlen, dstate, n_tiles,
            *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *zz.stride(), *dout.stride(),
            *du.stride(), *ddelta.stride(), *dzz.stride(),
            DELTA_SOFTPLUS=delta_softplus, HAS_D=D is not None, HAS_Z=z is not None,
            HAS_DELTA_BIAS=delta_bias is not None, BLOCK_D=cfg.block_d, BLOCK_L=cfg.block_l,
            BLOCK_N=cfg.block_n, num_warps=cfg.num_warps)
    else:
        for t in (dA, dB, dC, dD, dbias):
            if t is not None:
                t.zero_()
    dB = (dB[0] if n_dblocks == 1 else dB.sum(0)).to(B.dtype)
    dC = (dC[0] if n_dblocks == 1 else dC.sum(0)).to(C.dtype)
    return (du, ddelta, dA.sum(0), dB, dC, None if dD is None else dD.sum(0), dz,
            None if dbias is None else dbias.sum(0))


class SelectiveScanTrain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        out, hstart = _fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, hstart)
        ctx.delta_softplus = delta_softplus
        return out

    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias, hstart = ctx.saved_tensors
        grads = _bwd(dout, u, delta, A, B, C, D, z, delta_bias, hstart, ctx.delta_softplus)
        return (*grads, None)


def selective_scan_train(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    """Differentiable Triton selective scan from a zero state; see the module docstring. Returns y."""
    _check(u, delta, A, B, C, D, z, delta_bias, None)
    return SelectiveScanTrain.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))


def selective_scan_train_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    """PyTorch reference, same signature: `selective_scan_ref`'s sequential scan, differentiable by autograd."""
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)[0]


GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def self_check(device, batch: int = 2, dim: int = 40, seqlen: int = 75, dstate: int = 16, seed: int = 0,
               tol: float = 1e-3) -> dict:
    """Run the Triton op and the reference on a small random fp32 problem on `device` and compare y and
    every gradient. Returns {"ok": bool, "max_rel_err": {"y": .., "u": .., ...}} (max |diff| / max |ref|,
    all below `tol` for ok);
    "error" holds the exception text when the Triton op failed to run."""
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(device)

    inputs = dict(u=r(batch, dim, seqlen), delta=r(batch, dim, seqlen, scale=0.5),
                  A=(-torch.rand(dim, dstate, generator=g) * 2 - 0.1).to(device),
                  B=r(batch, dstate, seqlen), C=r(batch, dstate, seqlen), D=r(dim),
                  z=r(batch, dim, seqlen), delta_bias=r(dim, scale=0.3))
    dout = r(batch, dim, seqlen)
    results = {}
    try:
        for name, fn in (("triton", selective_scan_train), ("ref", selective_scan_train_ref)):
            leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
            y = fn(**leaves, delta_softplus=True)
            y.backward(dout)
            results[name] = {"y": y.detach(), **{k: leaves[k].grad for k in GRAD_NAMES}}
    except Exception as exc:  # noqa: BLE001 - the caller falls back to the reference on any failure
        return {"ok": False, "max_rel_err": {}, "error": f"{type(exc).__name__}: {exc}"}
    errs = {}
    for k, ref in results["ref"].items():
        out = results["triton"][k]
        if out is None or torch.isnan(out).any():
            errs[k] = float("inf")
            continue
        # floor 1e-4: a gradient that is exactly 0 (dA at seqlen 1) must not turn rounding noise into errors
        errs[k] = ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-4)).item()
    return {"ok": all(e < tol for e in errs.values()), "max_rel_err": errs}
