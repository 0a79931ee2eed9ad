"""Residual add + (gated) RMSNorm on CPU, one compiled pass per row (numba). The CPU counterpart of
`kernels/rms_norm.py`'s `rms_norm` (same signature and results).

Shape glossary
    rows   batch x positions (any leading shape, flattened);  N  features;  G  group size (N % G == 0)

rms_norm_cpu(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False)
    x [..., N];  residual like x or None;  z (the gate) like x or None;  weight [N]
    h = residual + x (the new residual);  t = h * silu(z) if z is given;
    out = weight * (t / sqrt(mean(t^2 over each group of G) + eps))
Returns (out, h) as `rms_norm` does (h None when no residual was given and round_input is False).
Everything fp32 (the CPU path's dtype: every rounding of `rms_norm` is then the identity); other dtypes go
to the reference.

Why compiled: the reference is ~10 PyTorch ops per call (casts, add, pow, mean, rsqrt, two multiplies),
each a pass over the rows; a toy SSM runs it 17 times per prefill and 17 times per decoded token.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

from kernels.cpu_scan import JIT, LOG2E, _exp2, in_parent, threads
from kernels.rms_norm import _plan, _rows, rms_norm_ref

rms_norm_cpu_ref = rms_norm_ref


LANES = 16  # partial sums of the sum of squares: one AVX-512 vector
PARALLEL_ROWS = 64  # fewer rows (a decode step) run on the calling thread: waking numba's pool costs more
JOBS = 8  # prange jobs: rows are dealt out round-robin, each job allocating its two buffers once


def _norm_rows(x, res, z, zc, w, eps, G, has_res, has_z, store_res, out, res_out):
    """x, res, out, res_out [rows, N] C-contiguous; z [rows, >= zc + N] C-contiguous, its columns from zc
    (`kernels.cpu_scan.in_parent`: the gate is read in place from in_proj's output); w [N].

    Written for LLVM's vectoriser (measured on the 2-core CPU, 512 x 512 gated: 1.39 ms as one fused loop,
    then 0.91 ms with one prange job per row, 0.18 ms now): one simple loop per step over row views
    (indexing x[r, g0 + c] in the loop kept some loops scalar), the sum of squares in LANES partial sums,
    since fastmath here may not reassociate a single running sum, and JOBS jobs that each take every
    JOBS-th row (one prange job per row ran no faster on two threads than on one)."""
    rows, N = x.shape
    jobs = min(rows, JOBS)
    for job in prange(jobs):  # rows job, job + jobs, ...: one job's buffer serves all its rows
        part = np.empty(LANES, np.float32)
        for r in range(job, rows, jobs):
            for g in range(N // G):
                g0 = g * G
                o = out[r, g0:g0 + G]
                xr = x[r, g0:g0 + G]
                if has_res:
                    rr = res[r, g0:g0 + G]
                    for c in range(G):
                        o[c] = xr[c] + rr[c]
                else:
                    for c in range(G):
                        o[c] = xr[c]
                if store_res:
                    ro = res_out[r, g0:g0 + G]
                    for c in range(G):
                        ro[c] = o[c]
                if has_z:  # silu(z) = z / (1 + 2^(-z log2 e))
                    zr = z[r, zc + g0:zc + g0 + G]
                    for c in range(G):
                        zv = zr[c]
                        o[c] *= zv / (np.float32(1.0) + _exp2(-zv * np.float32(LOG2E)))
                for j in range(LANES):
                    part[j] = 0.0
                full = G - G % LANES
                for c in range(0, full, LANES):
                    for j in range(LANES):
                        v = o[c + j]
                        part[j] += v * v
                ss = np.float32(0.0)
                for j in range(LANES):
                    ss += part[j]
                for c in range(full, G):
                    ss += o[c] * o[c]
                inv = np.float32(1.0) / math.sqrt(ss / G + eps)
                wr = w[g0:g0 + G]
                for c in range(G):
                    o[c] = wr[c] * (o[c] * inv)


_FLAGS = dict(cache=True, **JIT)
_norm_parallel = njit(parallel=True, **_FLAGS)(_norm_rows)
_norm_serial = njit(**_FLAGS)(_norm_rows)


def rms_norm_cpu(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False):
    """CPU fused (residual add +) (gated) RMSNorm; see the module docstring. Returns (out, new_residual)."""
    tensors = (x, weight, residual, z)
    if any(t is not None and (t.device.type != "cpu" or t.dtype != torch.float32) for t in tensors):
        return rms_norm_ref(x, weight, eps, residual, z, group_size, residual_fp32, round_input)
    N, G, _, store_res, _ = _plan(x, weight, residual, z, group_size, residual_fp32, round_input)
    x2 = _rows(x, N)
    out = torch.empty(x.shape, dtype=torch.float32)
    res_out = torch.empty(x.shape, dtype=torch.float32) if store_res else None
    r2 = _rows(residual, N) if residual is not None else x2
    z2 = _rows(z, N) if z is not None else x2
    if x2.shape[0]:
        kernel = _norm_parallel if x2.shape[0] >= PARALLEL_ROWS else _norm_serial
        if kernel is _norm_parallel:
            numba.set_num_threads(threads())
        parent = in_parent(z2[None]) if z is not None else None  # the gate in place (a slice of in_proj's output)
        zp, zc = (parent[0][0], parent[1]) if parent is not None else (z2.contiguous(), 0)
        x2, r2 = (t.contiguous() for t in (x2, r2))  # see _norm_rows: C layout vectorises
        kernel(x2.detach().numpy(), r2.detach().numpy(), zp.detach().numpy(), zc, weight.detach().numpy(),
               np.float32(eps), G, residual is not None, z is not None, store_res, out.view(-1, N).numpy(),
               (res_out if store_res else out).view(-1, N).numpy())
    return out, res_out


def bind_residual_norm(weight: torch.Tensor, eps: float, rows: int):
    """Residual add + RMSNorm (no gate, one group) for a decode loop: weight [N] converted once, output
    buffers owned here. Returns norm(x [rows, N], residual [rows, N] or None) -> (out, h) with h = x +
    residual (x when None) and out = weight * rmsnorm(h), both fp32 buffers the next call overwrites (so x and
    residual must not be this binding's own outputs). Why: `rms_norm_cpu`'s checks and conversions per call
    cost more than the norm of one row."""
    N = weight.shape[0]
    w = weight.detach().float().contiguous().numpy()
    eps32 = np.float32(eps)
    out, h = torch.empty(rows, N, dtype=torch.float32), torch.empty(rows, N, dtype=torch.float32)
    out_np, h_np = out.numpy(), h.numpy()
    kernel = _norm_parallel if rows >= PARALLEL_ROWS else _norm_serial

    def norm(x: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.shape == (rows, N) and x.dtype == torch.float32, f"x must be fp32 [{rows}, {N}], got {tuple(x.shape)}"
        x_np = x.detach().contiguous().numpy()
        r_np = x_np if residual is None else residual.detach().contiguous().numpy()
        if kernel is _norm_parallel:
            numba.set_num_threads(threads())
        kernel(x_np, r_np, x_np, 0, w, eps32, N, residual is not None, False, True, out_np, h_np)
        return out, h

    return norm
