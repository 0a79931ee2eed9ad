"""One Mamba-2 decode step on CPU between in_proj and out_proj, fused into one compiled call (numba): the conv
update (+ SiLU) of x, B and C, dt's bias and softplus, the state update of every head, D, and the gated RMSNorm.
The CPU path of `backend/generation/ssm_fast.py`'s Mamba-2 decode; the other paths run the same math as
separate ops.

Shape glossary
    batch  sequences decoded together;  I  intermediate size (= H * P);  H  heads;  P  head dim;  N  state size;
    G      B/C groups (H % G == 0);  CD  conv channels (= I + 2 G N);  K  conv width;  S  conv-state slots (>= K - 1);
    NG     norm group size (I % NG == 0)

mamba2_step_cpu(proj, conv_state, conv_w, conv_b, dt_bias, A, Dv, state, norm_w, eps, norm_group, heads, groups)
    proj        [batch, I + CD + H]  in_proj's output for the new token: gate z, then x B C, then dt
    conv_state  [batch, CD, S] fp32, in place;  conv_w [CD, K];  conv_b [CD]
    dt_bias, A  [H] (A negative);  Dv [H];  state [batch, H, P, N] fp32, in place;  norm_w [I]
Returns y [batch, I] fp32 (out_proj's input):
    (x, B, C) = silu(conv(xBC));  dt = softplus(dt + dt_bias);  a = exp(dt A)            (per head)
    state[h] <- a state[h] + dt x[h] B[g]^T;  y[h] = state[h] C[g] + D[h] x[h]
    y = norm_w * rmsnorm(y * silu(z)) over groups of NG

Why one call: see `kernels/cpu_mamba1_step.py`: at batch 1 a layer's step outside in_proj / out_proj is the
~15 PyTorch calls and 3 numba calls around its arithmetic (conv update, split, views, state update, norm).
The y = state C reduction runs in 16 partial sums (FASTMATH may not reassociate), so it vectorises.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from kernels.causal_conv1d import causal_conv1d_update_ref
from kernels.cpu_scan import JIT, LOG2E, _exp2, _softplus
from kernels.cpu_step import _conv_silu_row
from kernels.rms_norm import rms_norm_ref
from kernels.selective_state_update import selective_state_update_ref

LANES = 16


@njit(cache=True, **JIT)
def _mamba2_step_kernel(proj, conv_state, conv_w, conv_b, dt_bias, A2, Dv, state, norm_w, eps, NG, G, y):
    """See the module docstring; A2 = A * log2(e). All fp32 C-contiguous."""
    b, H, P, N = state.shape
    CD = conv_state.shape[1]
    I = H * P
    rep = H // G
    xbc = np.empty(CD, np.float32)
    part = np.empty(LANES, np.float32)
    for bi in range(b):
        _conv_silu_row(proj[bi], I, conv_state, bi, conv_w, conv_b, xbc)  # x B C follow the gate's I
        for h in range(H):
            g = h // rep
            b0 = I + g * N  # B of group g in xbc; C follows all G groups of B
            c0 = I + G * N + g * N
            d = _softplus(proj[bi, I + CD + h] + dt_bias[h])
            a = _exp2(d * A2[h])
            for p in range(P):
                xv = xbc[h * P + p]
                dx = d * xv
                for j in range(LANES):
                    part[j] = 0.0
                full = N - N % LANES
                for n0 in range(0, full, LANES):
                    for j in range(LANES):
                        s = a * state[bi, h, p, n0 + j] + dx * xbc[b0 + n0 + j]
                        state[bi, h, p, n0 + j] = s
                        part[j] += s * xbc[c0 + n0 + j]
                acc = np.float32(0.0)
                for j in range(LANES):
                    acc += part[j]
                for n in range(full, N):
                    s = a * state[bi, h, p, n] + dx * xbc[b0 + n]
                    state[bi, h, p, n] = s
                    acc += s * xbc[c0 + n]
                zv = proj[bi, h * P + p]
                y[bi, h * P + p] = (acc + Dv[h] * xv) * (zv / (np.float32(1.0) + _exp2(-zv * np.float32(LOG2E))))
        for g0 in range(0, I, NG):  # gated RMSNorm over groups of NG
            ss = np.float32(0.0)
            for c in range(NG):
                v = y[bi, g0 + c]
                ss += v * v
            inv = np.float32(1.0) / math.sqrt(ss / NG + eps)
            for c in range(NG):
                y[bi, g0 + c] = norm_w[g0 + c] * (y[bi, g0 + c] * inv)


def mamba2_step_cpu(proj, conv_state, conv_w, conv_b, dt_bias, A, Dv, state, norm_w, eps, norm_group,
                    groups) -> torch.Tensor:
    """One fused Mamba-2 decode step on CPU; see the module docstring. Updates conv_state and state in place."""
    batch, H, P, N = state.shape
    I, CD = H * P, conv_state.shape[1]
    assert CD == I + 2 * groups * N and H % groups == 0, f"conv channels {CD} != {I} + 2 x {groups} x {N}"
    assert proj.shape == (batch, I + CD + H), f"proj must be [{batch}, {I + CD + H}], got {tuple(proj.shape)}"
    assert conv_w.shape[0] == CD and conv_state.shape[2] >= conv_w.shape[1] - 1 and I % norm_group == 0
    assert A.shape == (H,) and Dv.shape == (H,) and dt_bias.shape == (H,), "A, D and dt_bias are one per head"
    for name, t in (("conv_state", conv_state), ("state", state)):
        assert t.dtype == torch.float32 and t.is_contiguous(), f"{name} must be contiguous fp32 (updated in place)"
    y = torch.empty(batch, I, dtype=torch.float32)
    _mamba2_step_kernel(proj.float().contiguous().numpy(), conv_state.numpy(), conv_w.float().contiguous().numpy(),
                        conv_b.float().contiguous().numpy(), dt_bias.float().contiguous().numpy(),
                        (A.float() * LOG2E).contiguous().numpy(), Dv.float().contiguous().numpy(), state.numpy(),
                        norm_w.float().contiguous().numpy(), np.float32(eps), int(norm_group), int(groups), y.numpy())
    return y


def bind_mamba2_step(conv_state, conv_w, conv_b, dt_bias, A, Dv, state, norm_w, eps, norm_group, groups):
    """`mamba2_step_cpu` with everything but proj checked and converted once (see
    `kernels/cpu_mamba1_step.bind_mamba1_step`). Returns step(proj [batch, I + CD + H] fp32, contiguous rows)
    -> y [batch, I], a buffer the next call overwrites. conv_b may be None (zeros)."""
    batch, H, P, N = state.shape
    I, CD = H * P, conv_state.shape[1]
    conv_b = torch.zeros(CD, dtype=torch.float32) if conv_b is None else conv_b
    assert CD == I + 2 * groups * N and H % groups == 0, f"conv channels {CD} != {I} + 2 x {groups} x {N}"
    assert conv_w.shape[0] == CD and conv_state.shape[2] >= conv_w.shape[1] - 1 and I % norm_group == 0
    assert A.shape == (H,) and Dv.shape == (H,) and dt_bias.shape == (H,), "A, D and dt_bias are one per head"
    for name, t in (("conv_state", conv_state), ("state", state)):
        assert t.dtype == torch.float32 and t.is_contiguous(), f"{name} must be contiguous fp32 (updated in place)"
    cw, cb, db, dv, nw = (t.detach().float().contiguous().numpy() for t in (conv_w, conv_b, dt_bias, Dv, norm_w))
    a2 = (A.detach().float() * LOG2E).contiguous().numpy()
    cs, st = conv_state.detach().numpy(), state.detach().numpy()
    eps32, ng, g = np.float32(eps), int(norm_group), int(groups)
    y = torch.empty(batch, I, dtype=torch.float32)
    y_np = y.numpy()

    def step(proj: torch.Tensor) -> torch.Tensor:
        assert proj.shape == (batch, I + CD + H) and proj.dtype == torch.float32, \
            f"proj must be fp32 [{batch}, {I + CD + H}], got {proj.dtype} {tuple(proj.shape)}"
        _mamba2_step_kernel(proj.detach().contiguous().numpy(), cs, cw, cb, db, a2, dv, st, nw, eps32, ng, g, y_np)
        return y

    return step


def mamba2_step_ref(proj, conv_state, conv_w, conv_b, dt_bias, A, Dv, state, norm_w, eps, norm_group,
                    groups) -> torch.Tensor:
    """The same step through the separate references (what the other paths run)."""
    batch, H, P, N = state.shape
    I, CD = H * P, conv_state.shape[1]
    z, xbc, dt = torch.split(proj.float(), [I, CD, H], dim=-1)
    xbc = causal_conv1d_update_ref(xbc, conv_state, conv_w, conv_b, "silu")
    x, B, C = torch.split(xbc, [I, groups * N, groups * N], dim=-1)
    y = selective_state_update_ref(state, x.reshape(batch, H, P), dt, A, B.reshape(batch, groups, N),
                                   C.reshape(batch, groups, N), Dv, None, dt_bias, True).reshape(batch, I)
    return rms_norm_ref(y, norm_w, eps, z=z, group_size=norm_group)[0]


mamba2_step_cpu_ref = mamba2_step_ref  # the reference this op is tested against
