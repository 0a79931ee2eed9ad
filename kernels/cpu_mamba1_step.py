"""One Mamba-1 decode step on CPU between in_proj and out_proj, fused into one compiled call (numba): the
conv update (+ SiLU), x_proj, dt_proj, softplus, the selective state update, D and the z gate. The CPU path
of `backend/generation/ssm_fast.py`'s Mamba-1 decode; the other paths run the same math as separate ops.

Shape glossary
    batch  sequences decoded together;  D  channels (d_inner);  N  state size;  R  dt rank;  K  conv width;
    S      conv-state slots (S >= K - 1)

mamba1_step_cpu(xz, conv_state, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, state)
    xz          [batch, 2D]  in_proj's output for the new token: x then z (any row stride, contiguous rows)
    conv_state  [batch, D, S] fp32, in place: shifted left by one, x in the last slot
    conv_w      [D, K];  conv_b [D]
    x_proj_t    [D, R + 2N]  x_proj.weight transposed (contiguous: the kernel's loop runs over its rows)
    dt_proj_t   [R, D]       dt_proj.weight transposed;  dt_bias [D]
    A           [D, N] fp32 (negative);  Dv [D];  state [batch, D, N] fp32, in place
Returns y [batch, D] fp32:
    xc = silu(conv(x));  (dtr, B, C) = x_proj(xc);  dt = softplus(dt_proj(dtr) + dt_bias)
    state <- state * exp(dt A) + dt B xc;   y = (state C + Dv xc) * silu(z)

Why one call: at batch 1 a layer's step is ~40k multiply-adds outside in_proj / out_proj, so its time was the
~12 PyTorch calls and 2 numba calls around them (conv update, x_proj, split, dt_proj, state update and their
wrappers), times 16 layers per token. Every loop here runs over channels or states with contiguous operands,
so LLVM vectorises it; the weights are passed transposed for that (`ssm_fast` caches the transposes).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from kernels.causal_conv1d import causal_conv1d_update_ref
from kernels.cpu_scan import JIT, LOG2E, _exp2, _softplus
from kernels.cpu_step import _conv_silu_row
from kernels.selective_state_update import selective_state_update_ref


@njit(cache=True, **JIT)
def _mamba1_step_kernel(xz, conv_state, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A2, Dv, state, y):
    """See the module docstring; A2 = A * log2(e). All fp32 C-contiguous."""
    b, D = conv_state.shape[0], conv_state.shape[1]
    J = x_proj_t.shape[1]
    N = state.shape[2]
    R = dt_proj_t.shape[0]
    xc = np.empty(D, np.float32)
    dt = np.empty(D, np.float32)
    xdbl = np.empty(J, np.float32)
    for bi in range(b):
        _conv_silu_row(xz[bi], 0, conv_state, bi, conv_w, conv_b, xc)  # x is the first D of xz
        for j in range(J):  # x_proj: rows of its transpose, vectorised over the R + 2N outputs
            xdbl[j] = 0.0
        for c in range(D):
            v = xc[c]
            for j in range(J):
                xdbl[j] += x_proj_t[c, j] * v
        for c in range(D):  # dt_proj, vectorised over channels
            dt[c] = dt_bias[c]
        for i in range(R):
            v = xdbl[i]
            for c in range(D):
                dt[c] += dt_proj_t[i, c] * v
        for c in range(D):
            dt[c] = _softplus(dt[c])
        for c in range(D):  # the state update over N states, then D and the gate
            d = dt[c]
            du = d * xc[c]
            acc = np.float32(0.0)
            for n in range(N):
                s = state[bi, c, n] * _exp2(d * A2[c, n]) + du * xdbl[R + n]
                state[bi, c, n] = s
                acc += s * xdbl[R + N + n]
            zv = xz[bi, D + c]
            y[bi, c] = (acc + Dv[c] * xc[c]) * (zv / (np.float32(1.0) + _exp2(-zv * np.float32(LOG2E))))


def mamba1_step_cpu(xz, conv_state, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, state) -> torch.Tensor:
    """One fused Mamba-1 decode step on CPU; see the module docstring. Updates conv_state and state in place."""
    batch, two_d = xz.shape
    D, N = A.shape
    R = dt_proj_t.shape[0]
    assert two_d == 2 * D, f"xz must be [batch, 2 * {D}], got {tuple(xz.shape)}"
    assert conv_state.shape[:2] == (batch, D) and conv_w.shape[0] == D and conv_state.shape[2] >= conv_w.shape[1] - 1
    assert x_proj_t.shape == (D, R + 2 * N) and dt_proj_t.shape == (R, D), "x_proj_t / dt_proj_t shapes"
    assert state.shape == (batch, D, N), f"state must be [{batch}, {D}, {N}], got {tuple(state.shape)}"
    for name, t in (("conv_state", conv_state), ("state", state)):
        assert t.dtype == torch.float32 and t.is_contiguous(), f"{name} must be contiguous fp32 (updated in place)"
    y = torch.empty(batch, D, dtype=torch.float32)
    _mamba1_step_kernel(xz.float().contiguous().numpy(), conv_state.numpy(), conv_w.float().contiguous().numpy(),
                        conv_b.float().contiguous().numpy(), x_proj_t.float().contiguous().numpy(),
                        dt_proj_t.float().contiguous().numpy(), dt_bias.float().contiguous().numpy(),
                        (A.float() * LOG2E).contiguous().numpy(), Dv.float().contiguous().numpy(), state.numpy(),
                        y.numpy())
    return y


def bind_mamba1_step(conv_state, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, state):
    """`mamba1_step_cpu` with everything but xz checked and converted once (a decode loop's layer: the same
    weights and state buffers every token). Returns step(xz [batch, 2D] fp32) -> y [batch, D],
    a buffer the next call overwrites. conv_b / dt_bias may be None (zeros). Why: the wrapper's ~10 casts and
    `.numpy()` calls per layer and token were a third of a toy model's decode step on CPU."""
    batch, D, N = state.shape
    R = dt_proj_t.shape[0]
    zeros = torch.zeros(D, dtype=torch.float32)
    conv_b = zeros if conv_b is None else conv_b
    dt_bias = zeros if dt_bias is None else dt_bias
    assert A.shape == (D, N) and conv_state.shape[:2] == (batch, D) and conv_w.shape[0] == D
    assert conv_state.shape[2] >= conv_w.shape[1] - 1, "conv_state needs K - 1 slots"
    assert x_proj_t.shape == (D, R + 2 * N) and dt_proj_t.shape == (R, D), "x_proj_t / dt_proj_t shapes"
    for name, t in (("conv_state", conv_state), ("state", state)):
        assert t.dtype == torch.float32 and t.is_contiguous(), f"{name} must be contiguous fp32 (updated in place)"
    fixed = [t.detach().float().contiguous().numpy() for t in (conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias)]
    a2, dv = (A.detach().float() * LOG2E).contiguous().numpy(), Dv.detach().float().contiguous().numpy()
    cs, st = conv_state.detach().numpy(), state.detach().numpy()
    y = torch.empty(batch, D, dtype=torch.float32)
    y_np = y.numpy()

    def step(xz: torch.Tensor) -> torch.Tensor:
        assert xz.shape == (batch, 2 * D) and xz.dtype == torch.float32, \
            f"xz must be fp32 [{batch}, {2 * D}], got {xz.dtype} {tuple(xz.shape)}"
        _mamba1_step_kernel(xz.detach().contiguous().numpy(), cs, *fixed, a2, dv, st, y_np)
        return y

    return step


def mamba1_step_ref(xz, conv_state, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, state) -> torch.Tensor:
    """The same step through the separate references (what the other paths run)."""
    D, N = A.shape
    R = dt_proj_t.shape[0]
    x, z = xz.float().chunk(2, dim=-1)
    xc = causal_conv1d_update_ref(x, conv_state, conv_w, conv_b, "silu")
    dtr, B, C = torch.split(xc @ x_proj_t.float(), [R, N, N], dim=-1)
    dt = dtr @ dt_proj_t.float()
    return selective_state_update_ref(state, xc, dt, A, B, C, Dv, z, dt_bias, True)


mamba1_step_cpu_ref = mamba1_step_ref  # the reference this op is tested against
