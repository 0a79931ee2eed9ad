import pytest
import torch

from kernels.causal_conv1d import (
    causal_conv1d,
    causal_conv1d_ref,
    causal_conv1d_update,
    causal_conv1d_update_ref,
)
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err


def rnd(*s, seed=0):
    return torch.randn(*s, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [4, 3], ids=lambda k: f"K{k}")
@pytest.mark.parametrize("layout", ["channel-major", "position-major"])
def test_prefill_matches_reference(layout, K, dtype, poison):
    batch, dim, seqlen = 2, 67, 33
    x = rnd(batch, dim, seqlen).to(dtype)
    if layout == "position-major":  # Hugging Face passes a transposed (batch, seqlen, dim) view
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    w, b = rnd(dim, K, seed=1), rnd(dim, seed=2)
    out = causal_conv1d(x, w, b, "silu")
    assert rel_err(out, causal_conv1d_ref(x, w, b, "silu")) < REL_TOL[dtype]


def test_prefill_without_bias_or_activation(poison):
    x, w = rnd(1, 5, 7), rnd(5, 4, seed=1)
    assert rel_err(causal_conv1d(x, w), causal_conv1d_ref(x, w)) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S", [3, 4, 6], ids=lambda s: f"S{s}")
def test_update_matches_reference_in_place(S, dtype, poison):
    batch, dim, K = 2, 67, 4
    state = rnd(batch, dim, S, seed=3).to(dtype)
    ref_state = state.clone()
    x, w, b = rnd(batch, dim, seed=4).to(dtype), rnd(dim, K, seed=5), rnd(dim, seed=6)
    ptr = state.data_ptr()
    out = causal_conv1d_update(x, state, w, b, "silu")
    out_ref = causal_conv1d_update_ref(x, ref_state, w, b, "silu")
    assert state.data_ptr() == ptr
    assert rel_err(out, out_ref) < REL_TOL[dtype]
    assert torch.equal(state, ref_state)


@pytest.mark.parametrize("S", [3, 4], ids=lambda s: f"S{s}")
def test_prefill_then_updates_equal_one_conv(S, poison):
    """Decoding token by token from the state left by a prefill reproduces the conv over everything."""
    dim, K, L0, steps = 10, 4, 6, 3
    full = rnd(1, dim, L0 + steps, seed=7)
    w, b = rnd(dim, K, seed=8), rnd(dim, seed=9)
    want = causal_conv1d_ref(full, w, b, "silu")
    state = full[:, :, L0 - S:L0].contiguous()  # the last S inputs of the prompt
    got = [causal_conv1d_update(full[:, :, L0 + i].contiguous(), state, w, b, "silu") for i in range(steps)]
    assert rel_err(torch.stack(got, dim=-1), want[:, :, L0:]) < 1e-5


def test_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation must be"):
        causal_conv1d(rnd(1, 4, 5), rnd(4, 4), None, "gelu")
