"""Depthwise causal conv1d (+ SiLU) over a sequence on CPU, one compiled pass (numba). The CPU counterpart of
`kernels/causal_conv1d.py`'s `causal_conv1d` (same signature, layout and results).

Shape glossary
    batch   sequences;  dim  channels;  seqlen  positions L;  K  kernel width (4 in Mamba)

causal_conv1d_cpu(x, weight, bias=None, activation=None)
    x [batch, dim, seqlen] fp32, any strides (Hugging Face's is a transposed [batch, seqlen, dim] view);
    weight [dim, K]; bias [dim]
    out[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (K - 1) + k])   (zero left padding)
    Returns [batch, dim, seqlen] stored position-major ([batch, seqlen, dim] memory), like the Triton op.
Other dtypes go to the reference.

Why compiled: the reference (`F.conv1d` with groups=dim) goes through oneDNN's depthwise convolution with
reorders of the channel-strided input and output, measured at 3-60 ms per toy layer on the busy 2-core
machine for 1.3M multiply-adds; this loop reads x once in its position-major layout, vectorised over
channels, with the SiLU fused (`kernels.cpu_scan._exp2`).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from kernels.causal_conv1d import _act, _check_weight, causal_conv1d_ref
from kernels.cpu_scan import JIT, LOG2E, _exp2, in_parent, threads

TILE_L = 64  # positions per job
causal_conv1d_cpu_ref = causal_conv1d_ref


@njit(parallel=True, cache=True, **JIT)
def _conv_kernel(x, xc, w, bias, has_bias, silu, out, tile_l):
    """x [b, L, >= xc + d] C-contiguous, its channels from column xc (`kernels.cpu_scan.in_parent`);
    out [b, L, d] C-contiguous; w [K, d] (transposed, so the channel loops read it contiguously);
    bias [d]. C layouts and contiguous weights let LLVM vectorise over channels: with x strided (numba's "A"
    layout) and w [d, K] this took 0.30 ms for a toy layer (512 channels x 512 positions); with the row views
    below and JIT's error model, 0.10 ms on two threads (0.15 ms on one)."""
    b, L, d = out.shape
    K = w.shape[0]
    ntile = (L + tile_l - 1) // tile_l
    for job in prange(b * ntile):
        bi = job // ntile
        t0 = (job % ntile) * tile_l
        for t in range(t0, min(L, t0 + tile_l)):
            o = out[bi, t]  # row views: indexing x[bi, s, xc + c] in the channel loop kept it scalar (4x slower)
            for c in range(d):
                o[c] = bias[c] if has_bias else np.float32(0.0)
            for k in range(K):
                s = t - (K - 1) + k
                if s >= 0:
                    xr = x[bi, s, xc:xc + d]
                    wr = w[k]
                    for c in range(d):
                        o[c] += wr[c] * xr[c]
            if silu:
                for c in range(d):
                    v = o[c]
                    o[c] = v / (np.float32(1.0) + _exp2(-v * np.float32(LOG2E)))


def causal_conv1d_cpu(x, weight, bias=None, activation=None, tile_l: int = TILE_L):
    """CPU depthwise causal conv over a sequence; see the module docstring."""
    batch, dim, seqlen = x.shape
    _check_weight(weight, bias, dim, x.device)
    silu = _act(activation)
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32 \
            or (bias is not None and bias.dtype != torch.float32):
        return causal_conv1d_ref(x, weight, bias, activation)
    parent = in_parent(x.transpose(1, 2))  # read a slice of in_proj's output in place
    xp, xc = parent if parent is not None else (x.transpose(1, 2).contiguous(), 0)
    out = torch.empty(batch, seqlen, dim, dtype=torch.float32)
    if seqlen:
        numba.set_num_threads(threads())
        _conv_kernel(xp.detach().numpy(), xc, weight.detach().t().contiguous().numpy(),
                     (bias if bias is not None else weight[:, 0]).detach().numpy(), bias is not None, silu,
                     out.numpy(), int(tile_l))
    return out.transpose(1, 2)
