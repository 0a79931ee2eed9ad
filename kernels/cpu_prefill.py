"""CPU: a Mamba-1 or Mamba-2 layer's prefill between in_proj and out_proj with the compiled kernels bound to the
layer's weights once, and the blocks' residual add + RMSNorm over a prompt; what
`backend/generation/cpu_prefill.py` runs per block. No new kernel: the conv, scan, SSD recurrence and norm of
`cpu_conv.py`, `cpu_scan.py`, `cpu_ssd_scan.py` and `cpu_norm.py`, called directly on their arrays, with the
same results (the tests compare them with the generic forward).

Shape glossary
    B   sequences;  L  positions;  K  conv width
    Mamba-1: D intermediate size (channels), N state size, R dt rank
    Mamba-2: I intermediate size = H heads x P head dim, G groups, N state size, conv_dim = I + 2 G N

bind_mamba1_prefill(conv_weight [D, K], conv_bias [D] | None, x_proj_weight [R + 2N, D],
                    dt_proj_weight [D, R], dt_bias [D] | None, A [D, N], D_skip [D]) -> prefill | None
    prefill(xz [B, L, 2D] fp32 C-contiguous, in_proj's output: x then the gate z)
        -> (y [B, L, D] gated, conv input [B, D, L] (a view: the cache keeps its last K), state [B, D, N] fp32)
bind_mamba2_prefill(conv_weight [conv_dim, K], conv_bias, dt_bias [H], A [H], D_skip [H], dt_limit,
                    norm_weight [I], eps, norm_group, H, P, G, N) -> prefill | None
    prefill(proj [B, L, I + conv_dim + H] fp32 C-contiguous, in_proj's output: gate, xBC, dt)
        -> (y [B, L, I] after the gated RMSNorm, xBC [B, conv_dim, L] (a view), state [B, H, P, N] fp32)
bind_block_norm(weight [W], eps) -> norm(x [rows, W], residual [rows, W] | None, out, res_out)
    res_out = x + residual (x when None; res_out may be residual itself: each row is read before it is
    written), out = weight * rmsnorm(res_out); every tensor fp32 C-contiguous.
A bind returns None for what its kernels do not take (Mamba-1 channels not a multiple of 16 or an odd state
size); the caller then runs the generic forward.

Why: through `backend/generation/ssm_fast.py`'s generic forward a layer's prefill made ~60 Python-level calls
around its kernels (argument checks, padding and layout decisions, parameter conversions, dispatch lookups,
`numba.set_num_threads`), decided again for every layer of every prompt; here they are decided once per
model. The measured effect is in the commit that added this file and in `kernels/README.md`.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F

from kernels.cpu_conv import TILE_L as CONV_TILE
from kernels.cpu_conv import _conv_kernel
from kernels.cpu_norm import PARALLEL_ROWS, _norm_parallel, _norm_serial
from kernels.cpu_scan import BLOCK_D, LOG2E, TILE_L, _scan_kernel, threads
from kernels.cpu_ssd_scan import _ssd_scan_kernel
from kernels.ssd_train import _dt_processed


def _np(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous fp32 numpy array of t (t's own memory when it already is one)."""
    return t.detach().float().contiguous().numpy()


def _bias(bias: torch.Tensor | None, n: int) -> np.ndarray:
    return _np(bias) if bias is not None else np.zeros(n, np.float32)


def _check_rows(t: torch.Tensor, width: int, name: str) -> None:
    assert t.dim() == 3 and t.shape[2] == width and t.dtype == torch.float32 and t.is_contiguous() \
        and t.device.type == "cpu", f"{name} must be a C-contiguous fp32 CPU tensor [B, L, {width}], got " \
        f"{tuple(t.shape)} {t.dtype} on {t.device}"


def bind_mamba1_prefill(conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A, D_skip):
    """See the module docstring."""
    dim, K = conv_weight.shape
    N = A.shape[1]
    R = dt_proj_weight.shape[1]
    if dim % BLOCK_D or N % 2:
        return None
    cw = _np(conv_weight.t())  # [K, D]: the conv's channel loops read it contiguously
    cb = _bias(conv_bias, dim)
    At = _np(A.float().t() * LOG2E)  # [N, D]
    Dv, bias = _np(D_skip), _bias(dt_bias, dim)
    wx, wdt = x_proj_weight.detach(), dt_proj_weight.detach()

    def prefill(xz: torch.Tensor):
        _check_rows(xz, 2 * dim, "xz")
        batch, L, _ = xz.shape
        xz_np = xz.numpy()
        numba.set_num_threads(threads())
        xc = torch.empty(batch, L, dim, dtype=torch.float32)
        _conv_kernel(xz_np, 0, cw, cb, True, True, xc.numpy(), CONV_TILE)
        xd = F.linear(xc, wx)  # [B, L, R + 2N]
        dt = F.linear(xd[..., :R], wdt)  # [B, L, D], before the bias and softplus (fused in the scan)
        Bm, Cm = xd[..., R:R + N].contiguous(), xd[..., R + N:].contiguous()
        h = np.zeros((batch, N, dim), np.float32)
        y = torch.empty(batch, L, dim, dtype=torch.float32)
        _scan_kernel(xc.numpy(), dt.numpy(), bias, True, At, Bm.numpy(), Cm.numpy(), Dv, xz_np, dim, True, h,
                     y.numpy(), TILE_L)
        return y, xz[..., :dim].transpose(1, 2), torch.from_numpy(h).transpose(1, 2).contiguous()

    return prefill


def bind_mamba2_prefill(conv_weight, conv_bias, dt_bias, A, D_skip, dt_limit, norm_weight, eps, norm_group, H, P,
                        G, N):
    """See the module docstring."""
    inter = H * P
    conv_dim = inter + 2 * G * N
    assert conv_weight.shape[0] == conv_dim, f"conv_weight must have {conv_dim} channels, got {conv_weight.shape[0]}"
    if D_skip.dim() != 1 or inter % norm_group or H % G:
        return None
    width = inter + conv_dim + H
    cw, cb = _np(conv_weight.t()), _bias(conv_bias, conv_dim)
    A2 = _np(A.float() * LOG2E)
    Dv = _np(D_skip.float()[:, None].expand(H, P))
    w, eps32, limit = _np(norm_weight), np.float32(eps), tuple(dt_limit)

    def prefill(proj: torch.Tensor):
        _check_rows(proj, width, "proj")
        batch, L, _ = proj.shape
        p_np = proj.numpy()
        numba.set_num_threads(threads())
        xbc = torch.empty(batch, L, conv_dim, dtype=torch.float32)
        _conv_kernel(p_np, inter, cw, cb, True, True, xbc.numpy(), CONV_TILE)
        dt = _dt_processed(proj[..., inter + conv_dim:], dt_bias, True, limit).contiguous()  # [B, L, H]
        h = np.zeros((batch, H, N, P), np.float32)
        y = torch.empty(batch, L, H, P, dtype=torch.float32)
        x_np = xbc.numpy()
        _ssd_scan_kernel(x_np, 0, dt.numpy(), A2, x_np, inter, x_np, inter + G * N, G, Dv, True, h, y.numpy())
        out = torch.empty(batch, L, inter, dtype=torch.float32)
        rows = batch * L
        y2, o2 = y.view(rows, inter).numpy(), out.view(rows, inter).numpy()
        kernel = _norm_parallel if rows >= PARALLEL_ROWS else _norm_serial
        kernel(y2, y2, p_np.reshape(rows, width), 0, w, eps32, norm_group, False, True, False, o2, o2)
        return out, proj[..., inter:inter + conv_dim].transpose(1, 2), torch.from_numpy(h).transpose(2, 3).contiguous()

    return prefill


def bind_block_norm(weight, eps):
    """See the module docstring."""
    w = _np(weight)
    width = w.shape[0]
    eps32 = np.float32(eps)

    def norm(x: torch.Tensor, residual: torch.Tensor | None, out: torch.Tensor, res_out: torch.Tensor) -> None:
        rows = x.shape[0]
        assert x.shape == out.shape == res_out.shape == (rows, width), \
            f"x, out and res_out must be [rows, {width}], got {tuple(x.shape)}, {tuple(out.shape)}, {tuple(res_out.shape)}"
        x_np = x.numpy()
        r_np = residual.numpy() if residual is not None else x_np
        kernel = _norm_parallel if rows >= PARALLEL_ROWS else _norm_serial
        kernel(x_np, r_np, x_np, 0, w, eps32, width, residual is not None, False, True, out.numpy(), res_out.numpy())

    return norm
