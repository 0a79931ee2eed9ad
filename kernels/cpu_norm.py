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

from kernels.cpu_scan import FASTMATH, LOG2E, _exp2, threads
from kernels.rms_norm import _plan, _rows, rms_norm_ref

rms_norm_cpu_ref = rms_norm_ref


PARALLEL_ROWS = 64  # fewer rows (a decode step) run on the calling thread: waking numba's pool costs more


def _norm_rows(x, res, z, w, eps, G, has_res, has_z, store_res, out, res_out):
    """x, res, z [rows, N] (row strides free); w [N]; out, res_out [rows, N] C-contiguous."""
    rows, N = x.shape
    for r in prange(rows):
        for g0 in range(0, N, G):
            ss = np.float32(0.0)
            for c in range(g0, g0 + G):
                h = x[r, c] + res[r, c] if has_res else x[r, c]
                if store_res:
                    res_out[r, c] = h
                if has_z:
                    zv = z[r, c]
                    h = h * zv / (np.float32(1.0) + _exp2(-zv * np.float32(LOG2E)))
                out[r, c] = h
                ss += h * h
            inv = np.float32(1.0) / math.sqrt(ss / G + eps)
            for c in range(g0, g0 + G):
                out[r, c] = w[c] * (out[r, c] * inv)


_FLAGS = dict(fastmath=FASTMATH, cache=True, boundscheck=False, nogil=True)
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
        kernel(x2.detach().numpy(), r2.detach().numpy(), z2.detach().numpy(), weight.detach().numpy(),
                     np.float32(eps), G, residual is not None, z is not None, store_res, out.view(-1, N).numpy(),
                     (res_out if store_res else out).view(-1, N).numpy())
    return out, res_out
