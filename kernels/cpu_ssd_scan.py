"""Mamba-2 prefill on CPU as a compiled recurrence (numba): one job per (sequence, head) walks the positions
with that head's [N, P] state in L1, returning y and the final fp32 state. Same signature and results as
`kernels/cpu_ssd.py`'s chunked SSD (and `kernels/ssd_chunk_scan.py`), which stays as the matmul formulation.

Shape glossary
    batch   sequences;  seqlen  positions L
    nheads  heads H;  headdim  P (channels per head);  dstate  N;  ngroups  G (nheads % ngroups == 0)

Arguments (mamba-ssm `mamba_chunk_scan_combined` layout)
    x       [batch, seqlen, nheads, headdim]   fp32/bf16/fp16 (computed in fp32)
    dt      [batch, seqlen, nheads];  A [nheads] fp32 (negative);  B, C [batch, seqlen, ngroups, dstate]
    D       [nheads] or [nheads, headdim] or None;  z like x or None;  dt_bias [nheads] or None
    initial_states [batch, nheads, headdim, dstate] or None
Returns y [batch, seqlen, nheads, headdim] in x's dtype and final_states [batch, nheads, headdim, dstate] fp32.

    dt_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max);  a_t = exp(dt_t * A)   (one scalar per head)
    h_t[n, p] = a_t h_{t-1}[n, p] + B_t[n] (dt_t x_t[p]);     y_t[p] = sum_n C_t[n] h_t[n, p] + D x_t[p]

Why a recurrence and not the chunked SSD here: with Mamba-2's scalar decay per head a position costs 3
multiply-adds per state element, vectorised over the P channels with the state held as [N, P] (no horizontal
sums), and nothing else: no [Q, Q] decay matrices, exponentials, cat or copies. The chunked SSD spends its
time in those (batched matmuls of 64 x 64, their layout copies and the state passing) on a 2-core CPU, where
matmul throughput is no better than these multiply-adds. Measured for one toy-mamba2 layer (8 heads x 64
channels, N 64, 512 positions): see the commit that added this file.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

from kernels.cpu_scan import JIT, LOG2E, _exp2, in_parent, threads
from kernels.ssd_chunk_scan import _check, ssd_chunk_scan_ref
from kernels.ssd_train import _dt_processed

ssd_scan_cpu_ref = ssd_chunk_scan_ref  # the reference this op is tested against


@njit(parallel=True, cache=True, **JIT)
def _ssd_scan_kernel(x, xc, dt, A2, Bm, bc, Cm, cc, G, Dv, has_d, h, y):
    """x [b, L, >= xc + H * P], Bm [b, L, >= bc + G * N], Cm [b, L, >= cc + G * N]: the columns from xc, bc,
    cc (`kernels.cpu_scan.in_parent`: read in place from the conv's output); y [b, L, H, P]; dt [b, L, H]
    (processed); A2 [H] = A * log2(e); Dv [H, P]; h [b, H, N, P] in: initial state, out: final state. All
    fp32, C-contiguous; the loops walk row views (3-D indexing in them kept LLVM from vectorising).

    Positions go in pairs: each state row is loaded once, advanced by two positions (y of both accumulated on
    the way) and stored once, half the state's L1 traffic of one position at a time, with the same operations
    in the same order (bit-identical results). One toy-mamba2 layer (8 heads x 64, N 64, two threads, the kernel
    alone, minimum of 60 calls, A/B in one process, run twice): 0.76 -> 0.69 ms at 512 positions, 3.56-3.84 ->
    3.23-3.24 ms at 2,048."""
    b, L, H, P = y.shape
    N = h.shape[2]
    per_group = H // G
    for job in prange(b * H):
        bi = job // H
        hh = job % H
        g = hh // per_group
        st = np.empty((N, P), np.float32)  # the head's state, private to this job (no aliasing to rule out)
        dx0 = np.empty(P, np.float32)  # dt * x of the pair's first and second position
        dx1 = np.empty(P, np.float32)
        acc0 = np.empty(P, np.float32)  # their y
        acc1 = np.empty(P, np.float32)
        for n in range(N):
            for p in range(P):
                st[n, p] = h[bi, hh, n, p]
        for t0 in range(0, L, 2):
            t1 = min(t0 + 1, L - 1)  # an odd last position pairs with itself and its second result is dropped
            d0 = dt[bi, t0, hh]
            d1 = dt[bi, t1, hh] if t1 > t0 else np.float32(0.0)
            a0 = _exp2(d0 * A2[hh])
            a1 = _exp2(d1 * A2[hh]) if t1 > t0 else np.float32(1.0)  # the state passes the phantom unchanged
            x0 = x[bi, t0, xc + hh * P:xc + hh * P + P]
            x1 = x[bi, t1, xc + hh * P:xc + hh * P + P]
            for p in range(P):
                dx0[p] = d0 * x0[p]
                dx1[p] = d1 * x1[p]
            if has_d:
                dr = Dv[hh]
                for p in range(P):
                    acc0[p] = dr[p] * x0[p]
                    acc1[p] = dr[p] * x1[p]
            else:
                for p in range(P):
                    acc0[p] = 0.0
                    acc1[p] = 0.0
            b0 = Bm[bi, t0, bc + g * N:bc + g * N + N]
            b1 = Bm[bi, t1, bc + g * N:bc + g * N + N]
            c0 = Cm[bi, t0, cc + g * N:cc + g * N + N]
            c1 = Cm[bi, t1, cc + g * N:cc + g * N + N]
            for n in range(N):
                bn0 = b0[n]
                cn0 = c0[n]
                bn1 = b1[n]
                cn1 = c1[n]
                s = st[n]
                for p in range(P):
                    v0 = a0 * s[p] + bn0 * dx0[p]
                    acc0[p] += v0 * cn0
                    v1 = a1 * v0 + bn1 * dx1[p]
                    acc1[p] += v1 * cn1
                    s[p] = v1
            y0 = y[bi, t0, hh]
            for p in range(P):
                y0[p] = acc0[p]
            if t1 > t0:
                y1 = y[bi, t1, hh]
                for p in range(P):
                    y1[p] = acc1[p]
        for n in range(N):
            for p in range(P):
                h[bi, hh, n, p] = st[n, p]


def _columns(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """t [b, L, a, c] -> (a C-contiguous fp32 [b, L, W] array holding t's a * c values from column col, col):
    t's own memory when t is a column slice of a wider fp32 [b, L, W] tensor (x, B and C are slices of the
    conv's output), else a contiguous copy."""
    b, L, a, c = t.shape
    if t.dtype == torch.float32 and t.stride(3) == 1 and t.stride(2) == c:
        parent = in_parent(t.flatten(2))
        if parent is not None:
            return parent
    return t.float().reshape(b, L, a * c).contiguous(), 0


def ssd_scan_cpu(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                 initial_states=None):
    """Mamba-2 prefill on CPU tensors as a compiled recurrence; see the module docstring. Returns
    (y, final_states fp32)."""
    _check(x, dt, A, B, C, D, z, dt_bias, initial_states)
    assert x.device.type == "cpu", f"ssd_scan_cpu takes CPU tensors, got {x.device}"
    batch, seqlen, nheads, headdim = x.shape
    dstate = B.shape[3]
    h = torch.zeros(batch, nheads, dstate, headdim, dtype=torch.float32)  # [N, P] per head: see the docstring
    if initial_states is not None:
        h.copy_(initial_states.float().transpose(2, 3))
    y = torch.empty(batch, seqlen, nheads, headdim, dtype=torch.float32)
    if seqlen:
        dtp = _dt_processed(dt, dt_bias, dt_softplus, dt_limit).contiguous()  # [batch, L, H]: small
        Dv = (D.float()[:, None].expand(nheads, headdim) if D is not None and D.dim() == 1
              else D.float() if D is not None else torch.zeros(nheads, headdim))
        numba.set_num_threads(threads())
        (xp, xc), (bp, bc), (cp, cc) = _columns(x), _columns(B), _columns(C)
        _ssd_scan_kernel(xp.detach().numpy(), xc, dtp.numpy(), (A.float() * LOG2E).contiguous().numpy(),
                         bp.detach().numpy(), bc, cp.detach().numpy(), cc, B.shape[2], Dv.contiguous().numpy(),
                         D is not None, h.numpy(), y.numpy())
        if z is not None:
            y = y * F.silu(z.float())
    return y.to(x.dtype), h.transpose(2, 3).contiguous()
