import pytest
import torch

from kernels.rms_norm import rms_norm, rms_norm_ref
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err


def rnd(*s, seed=0, dtype=torch.float32):
    return torch.randn(*s, generator=torch.Generator().manual_seed(seed)).to(DEVICE).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["block-first", "block-add", "block-add-lowres", "gated", "gated-groups"])
def test_matches_reference(mode, dtype, poison):
    rows, N = (2, 3), 48
    x = rnd(*rows, N, dtype=dtype)
    w = rnd(N, seed=1, dtype=dtype)
    kw = dict(round_input=mode.startswith("block"))
    if mode.startswith("block-add"):
        kw.update(residual=rnd(*rows, N, seed=2), residual_fp32=mode == "block-add")
    if mode.startswith("gated"):
        wide = rnd(6, 2 * N, seed=3, dtype=dtype)
        kw.update(z=wide[:, N:].view(*rows, N), group_size=16 if mode == "gated-groups" else None)
    out, res = rms_norm(x, w, 1e-5, **kw)
    out_ref, res_ref = rms_norm_ref(x, w, 1e-5, **kw)
    assert out.dtype == out_ref.dtype
    assert rel_err(out, out_ref) < REL_TOL[dtype] * 2
    if res_ref is None:
        assert res is None
    else:
        # a low-precision residual is rounded once (the interpreter may round bf16 differently from torch)
        assert res.dtype == res_ref.dtype and rel_err(res, res_ref) < REL_TOL.get(res.dtype, 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_reference_equals_hugging_face_modules(dtype):
    from transformers.models.mamba.modeling_mamba import MambaRMSNorm
    from transformers.models.mamba2.modeling_mamba2 import MambaRMSNormGated

    N = 32
    norm = MambaRMSNorm(N, eps=1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(N))
    h_prev, out_prev = torch.randn(2, 5, N), torch.randn(2, 5, N).to(dtype)  # residual (fp32), mixer output
    # MambaBlock: h = residual + mixer_out; next norm sees h.to(weight dtype)
    h = h_prev + out_prev
    want = norm(h.to(dtype))
    got, res = rms_norm_ref(out_prev, norm.weight.data, 1e-5, residual=h_prev, round_input=True)
    assert torch.equal(res, h) and torch.allclose(got.float(), want.float(), rtol=1e-2 if dtype != torch.float32 else 1e-5)

    try:
        gated = MambaRMSNormGated(N, group_size=8, eps=1e-5)  # transformers >= 5.2x
        group = 8
    except TypeError:
        gated, group = MambaRMSNormGated(N, eps=1e-5), None  # transformers 5.17: one group
    gated = gated.to(dtype)
    with torch.no_grad():
        gated.weight.copy_(torch.randn(N))
    y, gate = torch.randn(2, 5, N).to(dtype), torch.randn(2, 5, N).to(dtype)
    got, _ = rms_norm_ref(y, gated.weight.data, 1e-5, z=gate, group_size=group)
    assert torch.allclose(got.float(), gated(y, gate).float(), rtol=1e-2 if dtype != torch.float32 else 1e-5,
                          atol=1e-2 if dtype != torch.float32 else 1e-6)
