"""Channels-last copy: a (batch, dim, seqlen) tensor with positions contiguous (mamba-ssm's layout) copied to
the same values with channels contiguous ((batch, seqlen, dim) memory), the layout the selective scan's
per-position loads coalesce on (`LaunchConfig.transpose_len`, issue 15).

Shape glossary
    batch   sequences
    dim     channels
    seqlen  positions L

Why our own kernel rather than torch's `x.transpose(1, 2).contiguous()`: that is an elementwise copy whose
reads stride by seqlen, and the scan's seqlen-contiguous rows on an H100 (results/kernels_h100_5.jsonl:
4.6 ms at B16 D4096 L2048 against 1.44 ms channels-contiguous, three tensors copied) say it ran far below
copy bandwidth. Here one program loads a (BLOCK_D, BLOCK_L) tile along its contiguous positions and stores
it along its contiguous channels; Triton's coalescing gives the load and the store their own layouts and
converts between them through shared memory, so both sides move whole cache lines.
`python -m backend kernel-bench` times it against torch's copy on the same input (op `channels_last`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _channels_last_kernel(x_ptr, y_ptr, dim, seqlen, s_x_b, s_x_d, s_x_l, s_y_b, s_y_d, s_y_l,
                          BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    # program (b, l-block, d-block) copies x[b, d-block, l-block] to y[b, d-block, l-block]
    b = tl.program_id(0).to(tl.int64)  # int64: batch x stride passes 2**31 at large batch x length
    offs_l = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_d[:, None] < dim) & (offs_l[None, :] < seqlen)
    x = tl.load(x_ptr + b * s_x_b + offs_d[:, None] * s_x_d + offs_l[None, :] * s_x_l, mask=mask)
    tl.store(y_ptr + b * s_y_b + offs_d[:, None] * s_y_d + offs_l[None, :] * s_y_l, x, mask=mask)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """x (batch, dim, seqlen), any strides -> the same values as (batch, dim, seqlen) with channels
    contiguous, i.e. a (batch, seqlen, dim)-contiguous tensor viewed through transpose(1, 2)."""
    assert x.dim() == 3, f"x must be (batch, dim, seqlen), got shape {tuple(x.shape)}"
    batch, dim, seqlen = x.shape
    assert dim * seqlen < 2**31, "dim x seqlen must stay below 2**31 (per-sequence offsets are int32)"
    y = torch.empty(batch, seqlen, dim, device=x.device, dtype=x.dtype).transpose(1, 2)
    if x.numel() == 0:
        return y
    grid = (batch, triton.cdiv(seqlen, 64), triton.cdiv(dim, 64))
    _channels_last_kernel[grid](x, y, dim, seqlen, *x.stride(), *y.stride(), BLOCK_D=64, BLOCK_L=64, num_warps=4)
    return y


def channels_last_ref(x: torch.Tensor) -> torch.Tensor:
    """PyTorch reference (and what the scan did before): torch's strided copy."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)
