"""The argument contract of the Mamba-1 prefill scans (`selective_scan`, `selective_scan_par`,
`selective_scan_len`, `cpu_scan`, `selective_scan_train`): shapes, dtypes, contiguity and devices, asserted with
messages that say what was expected. Its own module so that the kernels `selective_scan` dispatches to can use it
without importing `selective_scan` back.

    u, delta    (batch, dim, seqlen)   fp32/bf16/fp16, any strides
    A           (dim, dstate)          fp32, contiguous
    B, C        (batch, dstate, seqlen)
    D, delta_bias (dim,) or None;  z like u or None;  initial_state (batch, dim, dstate) or None
"""

from __future__ import annotations

import torch


def check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state):
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    assert u.dtype in (torch.float32, torch.bfloat16, torch.float16), "u must be fp32, bf16 or fp16"
    assert delta.shape == u.shape, f"delta must be {tuple(u.shape)}, got {tuple(delta.shape)}"
    assert A.shape == (dim, dstate) and A.dtype == torch.float32, "A must be fp32 (dim, dstate)"
    for name, t in (("B", B), ("C", C)):
        assert t.shape == (batch, dstate, seqlen), f"{name} must be {(batch, dstate, seqlen)}, got {tuple(t.shape)}"
    assert D is None or D.shape == (dim,), "D must be (dim,)"
    assert delta_bias is None or delta_bias.shape == (dim,), "delta_bias must be (dim,)"
    assert z is None or z.shape == u.shape, "z must have the shape of u"
    assert initial_state is None or initial_state.shape == (batch, dim, dstate), "initial_state must be (batch, dim, dstate)"
    for name, t in dict(D=D, delta_bias=delta_bias, A=A, initial_state=initial_state).items():
        assert t is None or t.is_contiguous(), f"{name} must be contiguous"
    for name, t in dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias).items():
        assert t is None or t.device == u.device, f"{name} is on {t.device}, u on {u.device}"
