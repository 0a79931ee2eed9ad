"""RMSNorm as Mamba / Mamba-2 use it, fused: optional residual add before it (Mamba blocks) and optional
SiLU gate inside it (Mamba-2's gated norm), with Hugging Face's roundings, in one pass over each row.

Shape glossary
    rows   batch x positions (any leading shape, flattened);  N  features;  G  group size (N % G == 0)

rms_norm(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False)
    x        (..., N);  residual like x or None;  z (the gate) like x or None;  weight (N,)
    h        = residual + x (fp32 if residual_fp32, else x's dtype), returned as the new residual
    t        = h rounded to weight's dtype if round_input (what MambaBlock does before its norm), else h
    t        = t * silu(z) if z is given
    out      = weight * (t / sqrt(mean(t^2 over each group of G) + eps)) rounded to the output dtype, which is
               weight's dtype if round_input, else x's dtype (Hugging Face: `weight * hidden.to(input_dtype)`)
Returns (out, h) where h is the new residual (None when no residual was given and round_input is False).
Rows of x, z and residual may be slices (any row stride, contiguous inside a row).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_kernel(
    x_ptr, res_ptr, z_ptr, w_ptr, out_ptr, res_out_ptr,
    N, group, s_x, s_res, s_z, eps,
    HAS_RES: tl.constexpr, HAS_Z: tl.constexpr, STORE_RES: tl.constexpr, ROUND_INPUT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    g = tl.program_id(1)
    offs = tl.arange(0, BLOCK)
    mask = offs < group
    cols = g * group + offs
    h = tl.load(x_ptr + row * s_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        h += tl.load(res_ptr + row * s_res + cols, mask=mask, other=0.0).to(tl.float32)
    if STORE_RES:
        h = h.to(res_out_ptr.dtype.element_ty)  # the residual stream's own rounding
        tl.store(res_out_ptr + row * N + cols, h, mask=mask)
        h = h.to(tl.float32)
    if ROUND_INPUT:
        h = h.to(w_ptr.dtype.element_ty).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_ptr + row * s_z + cols, mask=mask, other=0.0).to(tl.float32)
        h = h * (z * tl.sigmoid(z))
    var = tl.sum(h * h, axis=0) / group
    r = h * (1.0 / tl.sqrt(var + eps))
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    r = r.to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + row * N + cols, (w * r).to(out_ptr.dtype.element_ty), mask=mask)


def _rows(t, N):
    """2-D (rows, N) view of t without copying (rows may be strided, each row contiguous)."""
    v = t.reshape(-1, N)
    assert v.stride(1) == 1, "the feature dim must be contiguous"
    return v


def _plan(x, weight, residual, z, group_size, residual_fp32, round_input):
    N = x.shape[-1]
    G = group_size or N
    assert weight.shape == (N,) and weight.is_contiguous(), f"weight must be contiguous ({N},)"
    assert N % G == 0, "the feature size must be a multiple of group_size"
    assert residual is None or residual.shape == x.shape, "residual must have the shape of x"
    assert z is None or z.shape == x.shape, "z must have the shape of x"
    out_dtype = weight.dtype if round_input else x.dtype
    store_res = residual is not None or round_input
    res_dtype = torch.float32 if residual_fp32 else x.dtype
    return N, G, out_dtype, store_res, res_dtype


def rms_norm(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False):
    """Triton fused (residual add +) (gated) RMSNorm; see the module docstring. Returns (out, new_residual)."""
    N, G, out_dtype, store_res, res_dtype = _plan(x, weight, residual, z, group_size, residual_fp32, round_input)
    x2 = _rows(x, N)
    rows = x2.shape[0]
    out = torch.empty(x.shape, device=x.device, dtype=out_dtype)
    res_out = torch.empty(x.shape, device=x.device, dtype=res_dtype) if store_res else None
    r2 = _rows(residual, N) if residual is not None else None
    z2 = _rows(z, N) if z is not None else None
    BLOCK = triton.next_power_of_2(G)
    # one row (group) per program; wide rows get more warps (64-lane wavefronts on AMD need fewer)
    num_warps = 8 if BLOCK >= 4096 else 4 if BLOCK >= 1024 else 2 if BLOCK >= 256 else 1
    _rms_norm_kernel[(rows, N // G)](
        x2, r2, z2, weight, out, res_out, N, G, x2.stride(0), r2.stride(0) if r2 is not None else 0,
        z2.stride(0) if z2 is not None else 0, float(eps),
        HAS_RES=residual is not None, HAS_Z=z is not None, STORE_RES=store_res, ROUND_INPUT=round_input,
        BLOCK=BLOCK, num_warps=num_warps,
    )
    return out, res_out


def rms_norm_ref(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False):
    """PyTorch reference, same signature (the same roundings as Hugging Face's modules)."""
    N, G, out_dtype, store_res, res_dtype = _plan(x, weight, residual, z, group_size, residual_fp32, round_input)
    h = x.float() + residual.float() if residual is not None else x.float()
    res_out = h.to(res_dtype) if store_res else None
    if store_res:
        h = res_out.float()
    if round_input:
        h = h.to(weight.dtype).float()
    if z is not None:
        h = h * torch.nn.functional.silu(z.float())
    hg = h.view(*h.shape[:-1], N // G, G)
    r = (hg * torch.rsqrt(hg.pow(2).mean(-1, keepdim=True) + eps)).view(h.shape)
    out = (weight.float() * r.to(out_dtype).float()).to(out_dtype)
    return out, res_out
