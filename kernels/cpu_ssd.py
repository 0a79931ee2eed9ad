"""Mamba-2 prefill on CPU: the chunked SSD as batched matmuls (vectorised PyTorch, MKL / oneDNN underneath),
with the final state. The CPU counterpart of `kernels/ssd_chunk_scan.py` (same signature and results).

Shape glossary
    batch    sequences
    seqlen   positions L
    nheads   heads H;  headdim P (channels per head);  dstate N
    ngroups  B/C groups G (nheads % ngroups == 0)
    Q        chunk length (`chunk`; the result does not depend on it beyond rounding)
    S        segment length (`segment`): the sequence is scanned segment by segment, each segment's final
             state the next one's initial state, so memory and work stay linear in L

Arguments (mamba-ssm `mamba_chunk_scan_combined` layout, what `ssd_chunk_scan` takes)
    x             [batch, seqlen, nheads, headdim]   fp32/bf16/fp16 (computed in fp32)
    dt            [batch, seqlen, nheads]
    A             [nheads] fp32 (negative)
    B, C          [batch, seqlen, ngroups, dstate]
    D             [nheads] or [nheads, headdim] or None;  z like x or None;  dt_bias [nheads] or None
    initial_states [batch, nheads, headdim, dstate] or None
Returns y [batch, seqlen, nheads, headdim] in x's dtype and final_states [batch, nheads, headdim, dstate] fp32.

    dt_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max)
    h_t  = exp(dt_t * A) h_{t-1} + dt_t x_t B_t^T;     y_t = h_t C_t + D x_t;   y_t *= silu(z_t)

The math is `kernels/ssd_train.py`'s (the Mamba-2 paper's four chunked terms, every exponent <= 0), reused
here with an initial state, the final state, and the chunk-to-chunk state passing walked in order (linear in
L; training uses a decay matrix); that file's docstring explains the terms. Mamba-2's scalar
decay per head is what makes this a few batched matmuls per chunk, so no compiled loop is needed here
(Mamba-1's per-channel decay is not: `kernels/cpu_scan.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.ssd_chunk_scan import _check, ssd_chunk_scan_ref
from kernels.ssd_train import _dt_processed, _ssd_chunked_fp32

CHUNK = 64  # Q: the intra-chunk [Q, Q] matmuls against the per-chunk [P, N] state terms
SEGMENT = 1024  # S: positions per call of the chunked terms (its state-passing matrix is [S/Q + 1, S/Q])
ssd_chunk_scan_cpu_ref = ssd_chunk_scan_ref  # the reference this op is tested against


def ssd_chunk_scan_cpu(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                       initial_states=None, chunk: int = CHUNK, segment: int = SEGMENT):
    """Chunked SSD on CPU tensors; see the module docstring. Returns (y, final_states fp32)."""
    _check(x, dt, A, B, C, D, z, dt_bias, initial_states)
    assert chunk >= 1 and segment >= 1, "chunk and segment must be positive"
    batch, seqlen, nheads, headdim = x.shape
    dstate = B.shape[3]
    state = (initial_states.float() if initial_states is not None
             else x.new_zeros(batch, nheads, headdim, dstate, dtype=torch.float32))
    if seqlen == 0:
        return x.new_zeros(x.shape), state.clone()
    seg = max(chunk, segment // chunk * chunk)  # whole chunks per segment
    dtp = _dt_processed(dt, dt_bias, dt_softplus, dt_limit)  # [batch, L, H] fp32
    Af = A.float()
    ys = []
    with torch.autocast(device_type="cpu", enabled=False):
        for s0 in range(0, seqlen, seg):
            sl = slice(s0, min(seqlen, s0 + seg))
            y, state = _ssd_chunked_fp32(x[:, sl].float(), dtp[:, sl], Af, B[:, sl].float(), C[:, sl].float(),
                                         min(chunk, sl.stop - s0), initial_states=state, sequential_passing=True)
            ys.append(y)
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)
        if D is not None:
            y = y + x.float() * (D.float()[:, None] if D.dim() == 1 else D.float())
        if z is not None:
            y = y * F.silu(z.float())
    return y.to(x.dtype), state
