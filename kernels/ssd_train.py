"""Mamba-2 chunked SSD for *training*: batched matmuls / einsums only, so PyTorch autograd gives the backward.

Shape glossary
    batch    sequences
    seqlen   positions L (padded inside to c * Q)
    nheads   heads H;  headdim P (channels per head);  dstate N
    ngroups  B/C groups G (nheads % ngroups == 0);  R = H / G heads per group
    Q        chunk length (`chunk_size`, capped at seqlen; the result does not depend on it beyond rounding)
    c        chunks = ceil(L / Q)

Arguments (the layout of kernels/ssd_chunk_scan.py, i.e. mamba-ssm's `mamba_chunk_scan_combined`)
    x             (batch, seqlen, nheads, headdim)   fp32/bf16/fp16
    dt            (batch, seqlen, nheads)
    A             (nheads,) fp32 (negative)
    B, C          (batch, seqlen, ngroups, dstate)
    D             (nheads,) or (nheads, headdim) or None;  z like x or None;  dt_bias (nheads,) or None
Returns y (batch, seqlen, nheads, headdim) in x's dtype. Everything inside runs in fp32 (autocast is
switched off for the body, so bf16 inputs under autocast are upcast once and y is rounded once).

    dt_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max)
    h_t  = exp(dt_t * A) h_{t-1} + dt_t x_t B_t^T;     y_t = h_t C_t + D x_t;   y_t *= silu(z_t)

The algorithm is the "state space duality" one of the Mamba-2 paper (its minimal listing), in four terms.
With cs = cumsum(dt * A) inside each chunk (non-increasing, cs <= 0):
    1. intra-chunk  Y_diag[t] = sum_{s<=t} (C_t . B_s) exp(cs_t - cs_s) dt_s x_s
                    a masked "attention" with the (Q, Q) segment-sum decay matrix per chunk and head
    2. chunk states S_k = sum_s exp(cs_last - cs_s) dt_s x_s B_s^T           (batch, c, H, P, N)
    3. state passing start_k = sum_{j<k} exp(T_{j+1} + ... + T_{k-1}) S_j,  T_j = cs_last of chunk j
                    a (c, c) strictly lower-triangular decay matrix per head
    4. state output Y_off[t] = exp(cs_t) C_t start_k^T
Every exponent is a difference cs_t - cs_s with s <= t (or a sum of chunk totals), masked to -inf above the
diagonal *before* exp, so all exponentials are of non-positive numbers and nothing overflows (the masked
entries get zero gradient). Padding positions at the end have dt = 0: no decay, no input, so they carry the
state and contribute nothing; their outputs are sliced off.

Memory: the largest intermediates are the (batch, H, c, Q, Q) decay / score matrices and the
(batch, c, H, P, N) chunk states; nothing of size (.., Q, Q, H, N) or (.., P, N) per position is formed
(B and C are contracted per group: heads of a group share one matmul over R * P columns).

`self_check(device)` compares forward and gradients with `ssd_chunk_scan_ref` (the sequential recurrence);
`python -m backend kernel-bench --ssd-train` times forward + backward against Hugging Face's pure-PyTorch path
(backend/bench/train_ops.py).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def _dt_processed(dt, dt_bias, dt_softplus, dt_limit):
    dtf = dt.float()
    if dt_bias is not None:
        dtf = dtf + dt_bias.float()
    if dt_softplus:
        dtf = F.softplus(dtf)
    return dtf.clamp(min=dt_limit[0], max=dt_limit[1])


def ssd_chunked(x, dt, A, B, C, chunk_size=64, D=None, z=None, dt_bias=None, dt_softplus=True,
                dt_limit=(0.0, float("inf"))):
    """Chunked SSD (differentiable); see the module docstring. Returns y (batch, seqlen, nheads, headdim)."""
    batch, seqlen, nheads, headdim = x.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    assert dt.shape == (batch, seqlen, nheads), f"dt must be {(batch, seqlen, nheads)}, got {tuple(dt.shape)}"
    assert A.shape == (nheads,), "A must be (nheads,)"
    assert B.shape == (batch, seqlen, ngroups, dstate) and C.shape == B.shape, "B, C must be (batch, seqlen, G, N)"
    assert nheads % ngroups == 0, "nheads must be a multiple of ngroups"
    assert D is None or D.shape in ((nheads,), (nheads, headdim)), "D must be (nheads,) or (nheads, headdim)"
    assert z is None or z.shape == x.shape, "z must have the shape of x"
    if seqlen == 0:
        return x.new_zeros(x.shape)
    out_dtype = x.dtype
    with torch.autocast(device_type=x.device.type, enabled=False):
        y, _ = _ssd_chunked_fp32(x.float(), _dt_processed(dt, dt_bias, dt_softplus, dt_limit), A.float(),
                                 B.float(), C.float(), max(1, min(int(chunk_size), seqlen)))
        if D is not None:
            y = y + x.float() * (D.float()[:, None] if D.dim() == 1 else D.float())
        if z is not None:
            y = y * F.silu(z.float())
    return y.to(out_dtype)


@functools.lru_cache(maxsize=32)
def _tril_mask(rows: int, cols: int, diagonal: int, device: str) -> torch.Tensor:
    """Boolean lower-triangular mask, made once per size (the CPU inference path calls this per layer)."""
    return torch.ones(rows, cols, dtype=torch.bool, device=device).tril(diagonal)


def _ssd_chunked_fp32(x, dt, A, B, C, Q, initial_states=None, sequential_passing=False):
    """The four SSD terms on fp32 tensors; dt already processed (>= 0). Returns (y without D / z, final
    state (batch, H, P, N)). `initial_states` (batch, H, P, N) is the state before position 0 (the CPU
    inference path, `kernels/cpu_ssd.py`, continues a sequence with it): it enters the state passing as a
    chunk -1 whose total decay is 0. `sequential_passing` walks the chunks one by one for step 3 (c small
    multiply-adds of the state, linear in L) instead of the (c + 1, c) decay matrix (one einsum, quadratic in
    c, what training differentiates through)."""
    b, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    R = H // G
    c = math.ceil(L / Q)
    pad = c * Q - L
    if pad:  # dt = 0 at the padding: no decay, no input
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    xc = x.view(b, c, Q, H, P)
    dtc = dt.view(b, c, Q, H)
    Bg = B.view(b, c, Q, G, N).transpose(2, 3)  # (b, c, G, Q, N)
    Cg = C.view(b, c, Q, G, N).transpose(2, 3)

    cs = torch.cumsum(dtc * A, dim=2)  # (b, c, Q, H), non-increasing along Q, <= 0
    csh = cs.transpose(2, 3)  # (b, c, H, Q)
    causal = _tril_mask(Q, Q, 0, str(x.device))

    # 1. intra-chunk: scores (C_t . B_s) per group, decay exp(cs_t - cs_s) [s <= t] and dt_s per head
    CB = Cg @ Bg.transpose(-1, -2)  # (b, c, G, Q, Q)
    seg = (csh[..., :, None] - csh[..., None, :]).masked_fill(~causal, -math.inf)  # (b, c, H, Q, Q)
    M = torch.exp(seg) * dtc.transpose(2, 3)[..., None, :]  # decay * dt_s
    M = (M.view(b, c, G, R, Q, Q) * CB[:, :, :, None]).view(b, c, H, Q, Q)
    y_diag = M @ xc.transpose(2, 3)  # (b, c, H, Q, P)

    # 2. per-chunk end states from the chunk's own inputs: (R*P, Q) @ (Q, N) per group
    w = torch.exp(cs[:, :, -1:, :] - cs) * dtc  # (b, c, Q, H)
    xw = (xc * w[..., None]).view(b, c, Q, G, R * P).permute(0, 1, 3, 4, 2)  # (b, c, G, R*P, Q)
    states = (xw @ Bg).view(b, c, H, P, N)

    # 3. inter-chunk state passing: start_k = sum_{j<k} exp(E_k - CT_j) S_j (+ exp(E_k) h0), CT inclusive /
    # E exclusive cumsum; k runs to c, and start_c is the final state
    if sequential_passing:
        decay = torch.exp(csh[..., -1])[..., None, None]  # (b, c, H, 1, 1): each chunk's total decay
        h = initial_states.float() if initial_states is not None else states.new_zeros(b, H, P, N)
        starts = []
        for k in range(c):
            starts.append(h)
            h = torch.addcmul(states[:, k], h, decay[:, k])
        start, final = torch.stack(starts, dim=1), h
    else:
        CT = torch.cumsum(csh[..., -1], dim=1)  # (b, c, H)
        E = F.pad(CT, (0, 0, 1, 0))  # (b, c + 1, H): E_k = CT_{k-1}, E_0 = 0
        strict = _tril_mask(c + 1, c, -1, str(x.device))
        seg_c = (E.transpose(1, 2)[..., :, None] - CT.transpose(1, 2)[..., None, :]).masked_fill(~strict, -math.inf)
        start = torch.einsum("bhkj,bjhpn->bkhpn", torch.exp(seg_c), states)  # (b, c + 1, H, P, N)
        if initial_states is not None:
            start = start + torch.exp(E)[..., None, None] * initial_states.float()[:, None]
        start, final = start[:, :c], start[:, c]

    # 4. state -> output: exp(cs_t) C_t start^T, per group over R*P columns
    y_off = Cg @ start.reshape(b, c, G, R * P, N).transpose(-1, -2)  # (b, c, G, Q, R*P)
    y_off = y_off.view(b, c, G, Q, R, P).transpose(3, 4) * csh.view(b, c, G, R, Q).exp()[..., None]

    y = (y_diag + y_off.reshape(b, c, H, Q, P)).transpose(2, 3).reshape(b, c * Q, H, P)
    return (y[:, :L] if pad else y), final


def _random_problem(batch, seqlen, nheads, headdim, ngroups, dstate, device, dtype=torch.float32, seed=0,
                    with_d=True, with_z=True):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(device)

    return dict(
        x=r(batch, seqlen, nheads, headdim).to(dtype), dt=r(batch, seqlen, nheads, scale=0.5).to(dtype),
        A=(-torch.rand(nheads, generator=g) - 0.2).to(device),
        B=r(batch, seqlen, ngroups, dstate).to(dtype), C=r(batch, seqlen, ngroups, dstate).to(dtype),
        D=r(nheads) if with_d else None, z=r(batch, seqlen, nheads, headdim).to(dtype) if with_z else None,
        dt_bias=r(nheads, scale=0.3),
    )


def self_check(device) -> dict:
    """ssd_chunked vs the sequential `ssd_chunk_scan_ref` on a small random problem on `device` (fp32):
    forward and the gradient of every input. Returns {"ok": bool, "max_rel_err": {name: err}}."""
    from kernels.ssd_chunk_scan import ssd_chunk_scan_ref

    device = torch.device(device)
    args = _random_problem(2, 45, 4, 8, 2, 16, device)
    leaves = {k: v.detach().requires_grad_() for k, v in args.items() if v is not None}
    ref_leaves = {k: v.detach().clone().requires_grad_() for k, v in leaves.items()}
    gy = torch.randn(2, 45, 4, 8, generator=torch.Generator().manual_seed(1)).to(device)
    y = ssd_chunked(**leaves, chunk_size=16, dt_softplus=True)
    y_ref, _ = ssd_chunk_scan_ref(**ref_leaves, dt_softplus=True)
    (y * gy).sum().backward()
    (y_ref * gy).sum().backward()

    def rel(a, b):
        return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6)).item()

    errs = {"y": rel(y, y_ref)}
    errs.update({f"grad_{k}": rel(leaves[k].grad, ref_leaves[k].grad) for k in leaves})
    return {"ok": all(e < 1e-3 for e in errs.values()), "max_rel_err": errs, "device": str(device)}
