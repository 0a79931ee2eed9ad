"""kernels/cpu_prefill.py: a Mamba-1 / Mamba-2 layer's prefill with its kernels bound once, and the blocks'
residual norm over a prompt, against the references composed the way the mixers compose them: odd lengths,
lengths that end mid-tile (the conv's 64 and the scan's 128 positions) and below the conv width, outputs
poisoned with NaN, the residual updated in place, and the shapes the bound kernels decline."""
# ruff: noqa: E402  (the kernel imports follow the skip: numba is not on the GPU image)

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("numba", reason="the CPU fast path needs numba (not on the GPU image)")

from kernels import dispatch
from kernels.causal_conv1d import causal_conv1d_ref
from kernels.cpu_prefill import bind_block_norm, bind_mamba1_prefill, bind_mamba2_prefill
from kernels.rms_norm import rms_norm_ref
from kernels.selective_scan import selective_scan_ref
from kernels.ssd_chunk_scan import ssd_chunk_scan_ref
from tests.kernels.conftest import rel_err


def rnd(*s, seed=0, scale=1.0):
    return torch.randn(*s, generator=torch.Generator().manual_seed(seed)) * scale


def mamba1_weights(dim, N, R, K=4, seed=0):
    return dict(conv_weight=rnd(dim, K, seed=seed, scale=0.5), conv_bias=rnd(dim, seed=seed + 1),
                x_proj_weight=rnd(R + 2 * N, dim, seed=seed + 2, scale=dim ** -0.5),
                dt_proj_weight=rnd(dim, R, seed=seed + 3, scale=R ** -0.5), dt_bias=rnd(dim, seed=seed + 4) - 2,
                A=-torch.exp(rnd(dim, N, seed=seed + 5, scale=0.5)), D_skip=rnd(dim, seed=seed + 6))


def mamba1_ref(xz, w, dim, N, R):
    x, z = xz[..., :dim].transpose(1, 2), xz[..., dim:].transpose(1, 2)
    xc = causal_conv1d_ref(x, w["conv_weight"], w["conv_bias"], "silu")  # [B, D, L]
    xd = F.linear(xc.transpose(1, 2), w["x_proj_weight"])
    dt = F.linear(xd[..., :R], w["dt_proj_weight"])
    Bm, Cm = xd[..., R:R + N].transpose(1, 2), xd[..., R + N:].transpose(1, 2)
    y, h = selective_scan_ref(xc, dt.transpose(1, 2), w["A"], Bm, Cm, w["D_skip"], z, w["dt_bias"], True)
    return y.transpose(1, 2), h


@pytest.mark.parametrize("L", [pytest.param(n, id=f"L{n}") for n in (1, 3, 37, 130)])
@pytest.mark.parametrize("batch,dim,N", [pytest.param(1, 32, 16, id="B1-D32-N16"), pytest.param(2, 48, 6, id="B2-D48-N6")])
def test_mamba1_prefill_equals_the_composed_references(batch, dim, N, L, poison):
    R = 4
    w = mamba1_weights(dim, N, R)
    xz = rnd(batch, L, 2 * dim, seed=11)
    y, conv_in, state = bind_mamba1_prefill(**w)(xz)
    y_ref, h_ref = mamba1_ref(xz, w, dim, N, R)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(state, h_ref) < 1e-4
    assert state.shape == (batch, dim, N) and state.is_contiguous()
    assert torch.equal(conv_in, xz[..., :dim].transpose(1, 2))  # what the cache keeps the last K of


def test_mamba1_prefill_declines_what_its_scan_does_not_take():
    assert bind_mamba1_prefill(**mamba1_weights(40, 16, 4)) is None  # channels not a multiple of 16
    assert bind_mamba1_prefill(**mamba1_weights(32, 7, 4)) is None  # an odd state size


def test_mamba1_prefill_asserts_its_input():
    prefill = bind_mamba1_prefill(**mamba1_weights(32, 8, 4))
    with pytest.raises(AssertionError, match="C-contiguous fp32"):
        prefill(rnd(1, 5, 64).double())
    with pytest.raises(AssertionError, match=r"\[B, L, 64\]"):
        prefill(rnd(1, 5, 63))


@pytest.mark.parametrize("L", [pytest.param(n, id=f"L{n}") for n in (1, 5, 29, 70)])
@pytest.mark.parametrize("limit,halves", [pytest.param((0.0, float("inf")), False, id="no-limit-one-group"),
                                          pytest.param((0.01, 0.5), True, id="dt-limit-norm-in-2-groups")])
def test_mamba2_prefill_equals_the_composed_references(L, limit, halves, poison):
    batch, H, P, G, N, K = 2, 4, 6, 2, 10, 4
    inter, conv_dim = H * P, H * P + 2 * G * N
    group = inter // 2 if halves else inter
    w = dict(conv_weight=rnd(conv_dim, K, seed=1, scale=0.5), conv_bias=rnd(conv_dim, seed=2),
             dt_bias=rnd(H, seed=3) - 1, A=-torch.exp(rnd(H, seed=4)), D_skip=rnd(H, seed=5), dt_limit=limit,
             norm_weight=rnd(inter, seed=6) + 1, eps=1e-5, norm_group=group, H=H, P=P, G=G, N=N)
    proj = rnd(batch, L, inter + conv_dim + H, seed=7)
    y, conv_in, state = bind_mamba2_prefill(**w)(proj)

    gate, xbc, dt = proj.split([inter, conv_dim, H], dim=-1)
    xc = causal_conv1d_ref(xbc.transpose(1, 2), w["conv_weight"], w["conv_bias"], "silu").transpose(1, 2)
    x, B, C = xc.split([inter, G * N, G * N], dim=-1)
    y_ref, h_ref = ssd_chunk_scan_ref(x.reshape(batch, L, H, P), dt, w["A"], B.reshape(batch, L, G, N),
                                      C.reshape(batch, L, G, N), w["D_skip"], None, w["dt_bias"], True, limit)
    out_ref, _ = rms_norm_ref(y_ref.reshape(batch, L, inter), w["norm_weight"], 1e-5, z=gate, group_size=group)
    assert rel_err(y, out_ref) < 1e-4 and rel_err(state, h_ref) < 1e-4
    assert state.shape == (batch, H, P, N) and state.is_contiguous()
    assert torch.equal(conv_in, xbc.transpose(1, 2))


@pytest.mark.parametrize("rows", [pytest.param(5, id="5-rows-serial"), pytest.param(70, id="70-rows-parallel")])
def test_block_norm_updates_the_residual_in_place(rows, poison):
    width = 40
    norm = bind_block_norm(rnd(width, seed=1) + 1, 1e-6)
    x, resid = rnd(rows, width, seed=2), rnd(rows, width, seed=3)
    want_out, want_h = rms_norm_ref(x, rnd(width, seed=1) + 1, 1e-6, residual=resid.clone())
    out = torch.empty(rows, width)
    norm(x, resid, out, resid)  # res_out is the residual itself, as the prefill loop passes it
    assert rel_err(out, want_out) < 1e-5 and rel_err(resid, want_h) < 1e-6
    first_out, first_h = torch.empty(rows, width), torch.empty(rows, width)
    norm(x, None, first_out, first_h)  # the first block: the residual is the embeddings
    want_out, _ = rms_norm_ref(x, rnd(width, seed=1) + 1, 1e-6)
    assert torch.equal(first_h, x) and rel_err(first_out, want_out) < 1e-5


def test_dispatch_offers_the_binders_on_the_cpu_path_only(monkeypatch):
    monkeypatch.delenv(dispatch.ENV, raising=False)
    assert dispatch.fused("mamba1_prefill_bind", "cpu") is bind_mamba1_prefill
    assert dispatch.fused("mamba2_prefill_bind", "cpu") is bind_mamba2_prefill
    assert dispatch.fused("block_norm_bind", "cpu") is bind_block_norm
    monkeypatch.setenv(dispatch.ENV, "reference")
    assert dispatch.fused("mamba1_prefill_bind", "cpu") is None and dispatch.fused("block_norm_bind", "cpu") is None
