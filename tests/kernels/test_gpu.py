"""Large bf16 shapes against the references on a real GPU (CUDA or ROCm). Skipped on CPU."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")]


def rel(out, ref):
    assert not torch.isnan(out).any()
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def test_selective_scan_large_bf16():
    from kernels.selective_scan import selective_scan, selective_scan_ref

    torch.manual_seed(0)
    b, d, L, n = 2, 1536, 2048, 16
    dev, bf = "cuda", torch.bfloat16
    u, dt, z = (torch.randn(b, d, L, device=dev, dtype=bf) for _ in range(3))
    A = -torch.rand(d, n, device=dev) - 0.1
    B, C = torch.randn(b, n, L, device=dev, dtype=bf), torch.randn(b, n, L, device=dev, dtype=bf)
    D, bias = torch.randn(d, device=dev), torch.randn(d, device=dev) * 0.1
    y, h = selective_scan(u, dt, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, dt, A, B, C, D, z, bias, True)
    assert rel(y, y_ref) < 2e-2 and rel(h, h_ref) < 1e-3


def test_ssd_chunk_scan_large_bf16():
    from kernels.ssd_chunk_scan import ssd_chunk_scan, ssd_chunk_scan_ref

    torch.manual_seed(0)
    b, L, H, P, G, N = 1, 1000, 24, 64, 1, 128
    dev, bf = "cuda", torch.bfloat16
    x = torch.randn(b, L, H, P, device=dev, dtype=bf)
    dt = torch.randn(b, L, H, device=dev, dtype=bf)
    A = -torch.rand(H, device=dev) - 0.1
    BC = torch.randn(b, L, 2 * G, N, device=dev, dtype=bf)
    D, bias = torch.randn(H, device=dev), torch.randn(H, device=dev) * 0.1
    y, h = ssd_chunk_scan(x, dt, A, BC[:, :, :G], BC[:, :, G:], D, None, bias, True)
    y_ref, h_ref = ssd_chunk_scan_ref(x, dt, A, BC[:, :, :G], BC[:, :, G:], D, None, bias, True)
    assert rel(y, y_ref) < 3e-2 and rel(h, h_ref) < 3e-2


def test_state_update_and_conv_large():
    from kernels.causal_conv1d import (
        causal_conv1d,
        causal_conv1d_ref,
        causal_conv1d_update,
        causal_conv1d_update_ref,
    )
    from kernels.selective_state_update import selective_state_update, selective_state_update_ref

    torch.manual_seed(0)
    dev, bf = "cuda", torch.bfloat16
    b, H, P, G, N = 16, 24, 64, 1, 128
    state = torch.randn(b, H, P, N, device=dev)
    ref_state = state.clone()
    x, dt = torch.randn(b, H, P, device=dev, dtype=bf), torch.randn(b, H, device=dev, dtype=bf)
    A, D, bias = -torch.rand(H, device=dev), torch.randn(H, device=dev), torch.randn(H, device=dev)
    B, C = torch.randn(b, G, N, device=dev, dtype=bf), torch.randn(b, G, N, device=dev, dtype=bf)
    out = selective_state_update(state, x, dt, A, B, C, D, None, bias, True)
    out_ref = selective_state_update_ref(ref_state, x, dt, A, B, C, D, None, bias, True)
    assert rel(out, out_ref) < 2e-2 and rel(state, ref_state) < 1e-4

    xs = torch.randn(b, 1536, 4096, device=dev, dtype=bf)
    w, cb = torch.randn(1536, 4, device=dev), torch.randn(1536, device=dev)
    assert rel(causal_conv1d(xs, w, cb, "silu"), causal_conv1d_ref(xs, w, cb, "silu")) < 2e-2
    cs = torch.randn(b, 1536, 4, device=dev, dtype=bf)
    cs_ref = cs.clone()
    o = causal_conv1d_update(xs[:, :, 0].contiguous(), cs, w, cb, "silu")
    o_ref = causal_conv1d_update_ref(xs[:, :, 0].contiguous(), cs_ref, w, cb, "silu")
    assert rel(o, o_ref) < 2e-2 and torch.equal(cs, cs_ref)
