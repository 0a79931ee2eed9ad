"""One Mamba-2 (SSD) layer's scan computed three ways, for the explainer page (mamba-minimal style).

State space duality (Dao & Gu 2024, "Transformers are SSMs"): with a scalar decay per head, the same map
x -> y has three exact forms, which differ only in cost:

    recurrent    h_t = a_t h_{t-1} + B_t xbar_t^T,  y_t = h_t C_t          O(L N P) work, sequential in L
                 (Section 3: the SSM as a linear recurrence)
    quadratic    Y = (M o C B^T) Xbar with the 1-semiseparable mask M[t, s] = a_{s+1} ... a_t (s <= t), 0 else:
                 masked "attention" without a softmax                          O(L^2 (N + P)) work, parallel
                 (Sections 4 and 5: structured masked attention, the duality)
    chunked      quadratic inside chunks of Q tokens, the recurrence between chunks on the chunk-end states
                                                                              O(L Q (N + P)) work (Section 6,
                 the paper's Listing 1 "ssd_minimal_discrete"; Hugging Face's torch path and kernels/ use it)

Shape glossary (batch 1): L tokens, H heads, P head dim, N state size, Q chunk length, c chunks.
    xbar  (L, H, P)   the input already scaled by its step size: Δ_t x_t
    log_a (L, H)      log of the per-head decay at each token: Δ_t A_h (<= 0)
    B, C  (L, H, N)   input and output projections (groups already repeated to heads)
    y     (L, H, P)   the scan output before the skip term D x and the gated norm
Every form also returns the final state (H, P, N).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

FORMS = ("recurrent", "chunked", "quadratic")


def recurrent(xbar, log_a, B, C):
    """The linear-time recurrence, one token at a time."""
    L, H, P = xbar.shape
    h = xbar.new_zeros(H, P, B.shape[-1])
    ys = []
    for t in range(L):
        h = torch.exp(log_a[t])[:, None, None] * h + xbar[t][..., None] * B[t][:, None, :]  # (H, P, N)
        ys.append(torch.einsum("hpn,hn->hp", h, C[t]))
    return torch.stack(ys), h


def segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): out[..., t, s] = x[s+1] + ... + x[t] for s <= t, -inf above the diagonal, so
    exp(segsum(log_a)) is the mask M of products of decays (stable: differences of one cumulative sum are
    avoided, each entry is its own sum)."""
    T = x.shape[-1]
    x = x[..., None].expand(*x.shape, T)  # x[..., r, s] = x[r]
    keep = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=-1)
    out = torch.cumsum(x.masked_fill(~keep, 0), dim=-2)  # sum over r in (s, t]
    return out.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device)), float("-inf"))


def quadratic(xbar, log_a, B, C):
    """The masked-attention form: one L x L matrix per head."""
    M = torch.exp(segsum(log_a.T))  # (H, L, L): products of decays, 0 above the diagonal
    scores = torch.einsum("thn,shn->hts", C, B) * M  # (H, L, L), the "attention" matrix of the layer
    y = torch.einsum("hts,shp->thp", scores, xbar)
    final = torch.einsum("hs,shn,shp->hpn", M[:, -1], B, xbar)  # the last row of M weights the last state
    return y, final


def chunked(xbar, log_a, B, C, chunk: int = 64):
    """Quadratic inside chunks, recurrence across them. Lengths that are not a multiple of `chunk` are padded
    with zero input and zero log-decay (decay 1), which changes neither the outputs kept nor the final state."""
    L, H, P = xbar.shape
    pad = (-L) % chunk
    if pad:
        xbar, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (xbar, B, C))
        log_a = F.pad(log_a, (0, 0, 0, pad))
    c = xbar.shape[0] // chunk
    X, Bc, Cc = (t.reshape(c, chunk, H, -1) for t in (xbar, B, C))  # (c, Q, H, .)
    A = log_a.reshape(c, chunk, H).permute(2, 0, 1)  # (H, c, Q)
    A_cum = torch.cumsum(A, dim=-1)
    # 1. within each chunk: the quadratic form on its diagonal block
    y_diag = torch.einsum("clhn,cshn,hcls,cshp->clhp", Cc, Bc, torch.exp(segsum(A)), X)
    # 2. each chunk's own contribution to the state at its end
    states = torch.einsum("clhn,hcl,clhp->chpn", Bc, torch.exp(A_cum[..., -1:] - A_cum), X)
    # 3. the recurrence across chunks: the state entering each chunk (and the final one)
    states = torch.cat([torch.zeros_like(states[:1]), states])  # (c+1, H, P, N)
    decay_chunk = torch.exp(segsum(F.pad(A_cum[..., -1], (1, 0))))  # (H, c+1, c+1)
    states = torch.einsum("hzc,chpn->zhpn", decay_chunk, states)
    entering, final = states[:-1], states[-1]
    # 4. what each position reads from the state that entered its chunk
    y_off = torch.einsum("clhn,chpn,hcl->clhp", Cc, entering, torch.exp(A_cum))
    return (y_diag + y_off).reshape(c * chunk, H, P)[:L], final


def run(form: str, xbar, log_a, B, C, chunk: int = 64):
    if form == "recurrent":
        return recurrent(xbar, log_a, B, C)
    if form == "quadratic":
        return quadratic(xbar, log_a, B, C)
    if form == "chunked":
        return chunked(xbar, log_a, B, C, chunk)
    raise ValueError(f"unknown SSD form {form!r}; one of {', '.join(FORMS)}")


def agreement(xbar, log_a, B, C, chunk: int = 64) -> dict[str, float]:
    """Max |y_form - y_recurrent| / max |y_recurrent| of the chunked and quadratic forms (and of the final
    states), in the inputs' dtype."""
    y0, h0 = recurrent(xbar, log_a, B, C)
    out = {}
    for form in ("chunked", "quadratic"):
        y, h = run(form, xbar, log_a, B, C, chunk)
        out[form] = float((y - y0).abs().max() / y0.abs().max().clamp_min(1e-30))
        out[form + " state"] = float((h - h0).abs().max() / h0.abs().max().clamp_min(1e-30))
    return out


def timings(xbar, log_a, B, C, lengths, chunk: int = 64, repeats: int = 3) -> list[dict]:
    """Median wall time of each form on the first `length` tokens, one row per (length, form)."""
    rows = []
    with torch.inference_mode():
        for n in lengths:
            args = (xbar[:n], log_a[:n], B[:n], C[:n])
            for form in FORMS:
                times = []
                for _ in range(repeats):
                    if xbar.is_cuda:
                        torch.cuda.synchronize(xbar.device)
                    t0 = time.perf_counter()
                    run(form, *args, chunk=chunk)
                    if xbar.is_cuda:
                        torch.cuda.synchronize(xbar.device)
                    times.append((time.perf_counter() - t0) * 1e3)
                rows.append({"length": int(n), "form": form, "ms": sorted(times)[len(times) // 2]})
    return rows
