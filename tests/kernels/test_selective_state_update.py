import pytest
import torch

from kernels.selective_state_update import selective_state_update, selective_state_update_ref
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err

STATE_DTYPES = [pytest.param(torch.float32, id="state-fp32"), pytest.param(torch.bfloat16, id="state-bf16")]


def mamba1(batch, dim, dstate, dtype, state_dtype, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g).to(DEVICE)

    return dict(state=r(batch, dim, dstate).to(state_dtype), x=r(batch, dim).to(dtype), dt=r(batch, dim).to(dtype),
                A=-torch.rand(dim, dstate, generator=g).to(DEVICE), B=r(batch, dstate).to(dtype),
                C=r(batch, dstate).to(dtype), D=r(dim), z=r(batch, dim).to(dtype), dt_bias=r(dim))


def mamba2(batch, nheads, headdim, ngroups, dstate, dtype, state_dtype, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g).to(DEVICE)

    return dict(state=r(batch, nheads, headdim, dstate).to(state_dtype), x=r(batch, nheads, headdim).to(dtype),
                dt=r(batch, nheads).to(dtype), A=-torch.rand(nheads, generator=g).to(DEVICE),
                B=r(batch, ngroups, dstate).to(dtype), C=r(batch, ngroups, dstate).to(dtype), D=r(nheads),
                z=None, dt_bias=r(nheads))


def check(args, dtype):
    state = args["state"]
    ptr = state.data_ptr()
    ref_state = state.clone()
    ref_args = {**args, "state": ref_state}
    out = selective_state_update(**args, dt_softplus=True)
    out_ref = selective_state_update_ref(**ref_args, dt_softplus=True)
    assert state.data_ptr() == ptr, "the state must be updated in place"
    assert out.dtype == args["x"].dtype
    assert rel_err(out, out_ref) < REL_TOL[dtype] * 2
    tol = REL_TOL[torch.bfloat16] if state.dtype == torch.bfloat16 else 1e-5
    assert rel_err(state, ref_state) < tol


@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,dim,dstate", [pytest.param(2, 67, 16, id="B2-D67-N16"), pytest.param(3, 5, 12, id="B3-D5-N12")])
def test_mamba1_matches_reference(batch, dim, dstate, dtype, state_dtype, poison):
    check(mamba1(batch, dim, dstate, dtype, state_dtype), dtype)


@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "batch,nheads,headdim,ngroups,dstate",
    [pytest.param(2, 6, 12, 2, 16, id="B2-H6-P12-G2-N16"), pytest.param(1, 3, 7, 1, 40, id="B1-H3-P7-G1-N40")],
)
def test_mamba2_matches_reference(batch, nheads, headdim, ngroups, dstate, dtype, state_dtype, poison):
    check(mamba2(batch, nheads, headdim, ngroups, dstate, dtype, state_dtype), dtype)


def test_without_optional_inputs(poison):
    args = mamba1(2, 9, 16, torch.float32, torch.float32, seed=3)
    args.update(D=None, z=None, dt_bias=None)
    ref_state = args["state"].clone()
    out = selective_state_update(**args)
    out_ref = selective_state_update_ref(**{**args, "state": ref_state})
    assert rel_err(out, out_ref) < 1e-5 and rel_err(args["state"], ref_state) < 1e-5


def test_rejects_non_contiguous_state():
    args = mamba1(2, 8, 16, torch.float32, torch.float32)
    args["state"] = args["state"].transpose(1, 2).contiguous().transpose(1, 2)
    with pytest.raises(AssertionError, match="state must be contiguous"):
        selective_state_update(**args)


def test_row_slices_of_larger_tensors(poison):
    """Decode passes slices of the projections (batch stride > row length) without copying them."""
    args = mamba2(3, 4, 8, 2, 16, torch.float32, torch.float32, seed=5)
    wide = torch.randn(3, 200, device=DEVICE)
    args["x"] = wide[:, :32].view(3, 4, 8)
    args["dt"] = wide[:, 32:36]
    args["B"], args["C"] = wide[:, 40:72].view(3, 2, 16), wide[:, 72:104].view(3, 2, 16)
    contiguous = {k: (v.contiguous() if torch.is_tensor(v) else v) for k, v in args.items()}
    contiguous["state"] = args["state"].clone()
    out = selective_state_update(**args, dt_softplus=True)
    out_ref = selective_state_update_ref(**contiguous, dt_softplus=True)
    assert rel_err(out, out_ref) < 1e-5 and rel_err(args["state"], contiguous["state"]) < 1e-5
