"""One decode step on CPU, fused: the selective state update (Mamba-1 and Mamba-2) and the one-token causal
conv update, each one compiled call (numba) instead of the ~30 / ~8 small PyTorch ops of their references.
The CPU counterparts of `kernels/selective_state_update.py` and `causal_conv1d.py`'s update (same
signatures, same in-place semantics, same results within the kernel tests' bounds).

Shape glossary
    batch    sequences decoded together
    nheads   SSM heads H (Mamba-2); Mamba-1 is the 3-D form below
    dim      channels per head P (Mamba-2 head_dim; Mamba-1 d_inner)
    dstate   state size N
    ngroups  B/C groups G (nheads % ngroups == 0)
    K        conv width; S >= K - 1 slots of conv state

selective_state_update_cpu(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus): the arguments of
`selective_state_update` (see its docstring):
    Mamba-1  state [batch, dim, dstate]; x, dt, z [batch, dim]; A [dim, dstate]; B, C [batch, dstate];
             D, dt_bias [dim]
    Mamba-2  state [batch, nheads, dim, dstate]; x, z [batch, nheads, dim]; dt [batch, nheads] with
             A [nheads] (Mamba-2's scalar A per head; the per-channel form goes to the reference);
             B, C [batch, ngroups, dstate]; D [nheads] or [nheads, dim]; dt_bias [nheads]
    state  <- state * exp(dt * A) + dt * B * x;   out = sum_n state * C + D * x;   out *= silu(z)
causal_conv1d_update_cpu(x [batch, dim], conv_state [batch, dim, S], weight [dim, K], bias, activation):
    shifts x into conv_state (in place) and returns the [batch, dim] conv output (+ SiLU).

Why compiled: at batch 1 a decode step is a few thousand multiply-adds per layer, so its time is the
number of PyTorch calls (each a few microseconds), not the arithmetic; one numba call replaces them.
The state is fp32 on the CPU path (`StaticSSMCache` keeps it so); other state / input dtypes, and CUDA
tensors, go to the references. Exponentials of the state update use `kernels.cpu_scan._exp2` (vectorised);
softplus and the SiLU gate are per channel (a few hundred libm calls per layer).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from kernels.causal_conv1d import _act, _check_update, causal_conv1d_update_ref
from kernels.cpu_scan import JIT, LOG2E, _exp2
from kernels.selective_state_update import _check, _to_heads, selective_state_update_ref

selective_state_update_cpu_ref = selective_state_update_ref
causal_conv1d_update_cpu_ref = causal_conv1d_update_ref
_EMPTY = np.zeros((1, 1, 1), np.float32)  # stands in for absent optional arrays


@njit(inline="always", **JIT)
def _softplus(v):
    return v if v > 20.0 else math.log1p(math.exp(v))


@njit(inline="always", **JIT)
def _silu(v):
    return v / (np.float32(1.0) + _exp2(-v * np.float32(LOG2E)))


@njit(cache=True, **JIT)
def _ssu_kernel(state, x, dt, A, Bm, Cm, Dv, z, bias, out, tied, has_d, has_z, has_bias, softplus):
    """state [b, H, P, N] fp32 (in place); x, out [b, H, P]; dt [b, H, P] (untied: A [H, P, N]) or [b, H, 1]
    (tied: A [H, 1, 1]); Bm, Cm [b, G, N]; Dv, bias [H, P] (or [H, 1] tied) when present; z like x."""
    b, H, P, N = state.shape
    rep = H // Bm.shape[1]
    for bi in range(b):
        for h in range(H):
            g = h // rep
            for p in range(P):
                pi = 0 if tied else p
                d = np.float32(dt[bi, h, pi])
                if has_bias:
                    d += bias[h, pi]
                if softplus:
                    d = _softplus(d)
                xv = np.float32(x[bi, h, p])
                dx = d * xv
                acc = np.float32(0.0)
                if tied:
                    dA = _exp2(d * A[h, 0, 0] * np.float32(LOG2E))
                    for n in range(N):
                        s = state[bi, h, p, n] * dA + dx * Bm[bi, g, n]
                        state[bi, h, p, n] = s
                        acc += s * Cm[bi, g, n]
                else:
                    for n in range(N):
                        s = state[bi, h, p, n] * _exp2(d * A[h, p, n] * np.float32(LOG2E)) + dx * Bm[bi, g, n]
                        state[bi, h, p, n] = s
                        acc += s * Cm[bi, g, n]
                if has_d:
                    acc += xv * Dv[h, pi if Dv.shape[1] == 1 else p]
                if has_z:
                    acc *= _silu(np.float32(z[bi, h, p]))
                out[bi, h, p] = acc


@njit(inline="always", **JIT)
def _conv_silu_row(x, x0, conv_state, bi, w, bias, out):
    """Sequence bi's conv update + SiLU for the fused decode steps: channel c's new input x[x0 + c] is shifted
    into conv_state[bi, c] (in place) and out[c] = silu(bias[c] + the conv over its K newest inputs)."""
    C, S = conv_state.shape[1], conv_state.shape[2]
    K = w.shape[1]
    for c in range(C):
        xv = x[x0 + c]
        acc = bias[c] + w[c, K - 1] * xv
        for k in range(K - 1):
            acc += w[c, k] * conv_state[bi, c, S - K + 1 + k]
        for s in range(S - 1):
            conv_state[bi, c, s] = conv_state[bi, c, s + 1]
        conv_state[bi, c, S - 1] = xv
        out[c] = _silu(acc)


@njit(cache=True, **JIT)
def _conv_update_kernel(x, conv_state, w, bias, has_bias, silu, out):
    """x [b, d]; conv_state [b, d, S] (in place: shifted left by one, x in the last slot); w [d, K]."""
    b, d = x.shape
    S = conv_state.shape[2]
    K = w.shape[1]
    for bi in range(b):
        for c in range(d):
            xv = np.float32(x[bi, c])
            acc = np.float32(bias[c]) if has_bias else np.float32(0.0)
            for k in range(K - 1):  # the K - 1 newest slots, then x (read before the shift)
                acc += w[c, k] * conv_state[bi, c, S - K + 1 + k]
            acc += w[c, K - 1] * xv
            for s in range(S - 1):
                conv_state[bi, c, s] = conv_state[bi, c, s + 1]
            conv_state[bi, c, S - 1] = xv
            out[bi, c] = _silu(acc) if silu else acc


def _np(t: torch.Tensor | None, ndim: int) -> np.ndarray:
    return _EMPTY[(0,) * (3 - ndim)] if t is None else t.detach().numpy()


def _fast_ok(*tensors) -> bool:
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def selective_state_update_cpu(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One fused decode step on CPU; see the module docstring. Updates `state` in place and returns out."""
    squeeze = state.dim() == 3
    if not _fast_ok(state, x, dt, A, B, C, D, z, dt_bias) or (state.dim() == 4 and A.dim() != 1):
        return selective_state_update_ref(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    state4, x4, dt4, A4, B4, C4, D4, z4, bias4 = _to_heads(state, x, dt, A, B, C, D, z, dt_bias)
    _check(state4, x4, dt4, A4, B4, C4, D4, z4, bias4)
    tied = A4.dim() == 1
    if tied:  # per-head scalars as [.., H, 1] so that the kernel indexes both forms alike
        dt4, A4 = dt4[..., None], A4[:, None, None]
        bias4 = None if bias4 is None else bias4[:, None]
        D4 = None if D4 is None else (D4[:, None] if D4.dim() == 1 else D4)
    out = torch.empty(x4.shape, dtype=torch.float32)
    _ssu_kernel(state4.numpy(), x4.numpy(), dt4.numpy(), A4.numpy(), B4.numpy(), C4.numpy(), _np(D4, 2),
                _np(z4, 3), _np(bias4, 2), out.numpy(), tied, D4 is not None, z4 is not None, bias4 is not None,
                bool(dt_softplus))
    return out.squeeze(1) if squeeze else out


def causal_conv1d_update_cpu(x, conv_state, weight, bias=None, activation=None):
    """One-token conv step on CPU, fused; updates `conv_state` in place and returns [batch, dim]."""
    if not _fast_ok(x, conv_state, weight, bias):
        return causal_conv1d_update_ref(x, conv_state, weight, bias, activation)
    _check_update(x, conv_state, weight, bias)
    out = torch.empty(x.shape, dtype=torch.float32)
    _conv_update_kernel(x.detach().numpy(), conv_state.numpy(), weight.detach().numpy(), _np(bias, 1),
                        bias is not None, _act(activation), out.numpy())
    return out
