"""selective_scan_train: forward equals `selective_scan`, every gradient equals autograd through the
PyTorch reference (odd shapes: seqlen not a multiple of BLOCK_L, seqlen 1, dim not a multiple of BLOCK_D,
dstate below the padded BLOCK_N), output and gradient buffers NaN-poisoned."""

import pytest
import torch

from kernels.selective_scan import selective_scan
from kernels.selective_scan_train import (
    GRAD_NAMES,
    selective_scan_train,
    selective_scan_train_ref,
    self_check,
    train_config,
)
from tests.kernels.conftest import DEVICE, REL_TOL, rel_err

SHAPES = [
    pytest.param((2, 37, 19, 16), id="B2-D37-L19-N16"),  # 3 tiles (last partial), 3 channel blocks
    pytest.param((1, 5, 1, 4), id="B1-D5-L1-N4"),
    pytest.param((2, 16, 8, 8), id="B2-D16-L8-N8"),  # exactly one tile, one block
    pytest.param((1, 20, 33, 16), id="B1-D20-L33-N16"),
]
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]
# gradients sum over positions / channels: a little more room than the forward's REL_TOL
GRAD_TOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}


def make(batch, dim, seqlen, dstate, dtype, seed=0, layout="position-major"):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return torch.randn(*s, generator=g) * scale

    def seq(*s, scale=1.0):  # (batch, x, seqlen) tensors as Hugging Face hands them: (batch, seqlen, x) memory
        t = r(*s, scale=scale).to(dtype)
        if layout == "position-major":
            t = t.transpose(1, 2).contiguous().transpose(1, 2)
        return t.to(DEVICE)

    return dict(u=seq(batch, dim, seqlen), delta=seq(batch, dim, seqlen, scale=0.5),
                A=(-torch.rand(dim, dstate, generator=g) * 2 - 0.1).to(DEVICE),
                B=seq(batch, dstate, seqlen), C=seq(batch, dstate, seqlen), D=r(dim).to(DEVICE),
                z=seq(batch, dim, seqlen), delta_bias=r(dim, scale=0.3).to(DEVICE))


def run(fn, inputs, dout, softplus=True):
    leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inputs.items()}
    y = fn(**leaves, delta_softplus=softplus)
    y.backward(dout)
    return y.detach(), {k: (v.grad if v is not None else None) for k, v in leaves.items()}


def check_grads(got, want, tol):
    for name in GRAD_NAMES:
        if want[name] is None:
            assert got[name] is None, name
            continue
        assert got[name].dtype == want[name].dtype, name
        err = rel_err(got[name], want[name]) if want[name].abs().max() > 0 else got[name].abs().max().item()
        assert err < tol, f"d{name}: rel err {err:.2e}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_grads_match_reference(shape, dtype, poison):
    inputs = make(*shape, dtype)
    dout = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(9)).to(dtype).to(DEVICE)
    y, grads = run(selective_scan_train, inputs, dout)
    y_ref, grads_ref = run(selective_scan_train_ref, inputs, dout)
    y_fwd, _ = selective_scan(*inputs.values(), True)  # the inference kernel
    assert y.dtype == dtype
    assert rel_err(y, y_fwd) < REL_TOL[dtype] and rel_err(y, y_ref) < REL_TOL[dtype]
    check_grads(grads, grads_ref, GRAD_TOL[dtype])


def test_optional_inputs_absent_no_softplus(poison):
    """No D, no z, no delta_bias, no softplus; channel-major (contiguous) layout."""
    inputs = make(2, 19, 21, 16, torch.float32, seed=1, layout="contiguous")
    inputs.update(D=None, z=None, delta_bias=None)
    inputs["delta"] = inputs["delta"].abs()
    dout = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    y, grads = run(selective_scan_train, inputs, dout, softplus=False)
    y_ref, grads_ref = run(selective_scan_train_ref, inputs, dout, softplus=False)
    assert rel_err(y, y_ref) < 1e-4
    check_grads(grads, grads_ref, 1e-4)


def test_only_some_inputs_require_grad(poison):
    """A frozen A / D (no grad) is fine: the op returns gradients only where autograd wants them."""
    inputs = make(1, 9, 11, 4, torch.float32, seed=4)
    u = inputs["u"].clone().requires_grad_(True)
    y = selective_scan_train(u, *[inputs[k] for k in GRAD_NAMES[1:]])
    y.sum().backward()
    u2 = inputs["u"].clone().requires_grad_(True)
    selective_scan_train_ref(u2, *[inputs[k] for k in GRAD_NAMES[1:]]).sum().backward()
    assert rel_err(u.grad, u2.grad) < 1e-4


def test_cpu_config_crosses_tiles_and_blocks():
    """The shapes above span several BLOCK_L tiles and BLOCK_D channel blocks in the interpreter config."""
    fwd, bwd = train_config(16, "cpu")
    assert fwd.block_l == bwd.block_l and 19 % fwd.block_l and 37 > 2 * bwd.block_d
    gpu_fwd, gpu_bwd = train_config(16, "cuda")
    assert gpu_fwd.block_l == gpu_bwd.block_l  # the backward walks the forward's saved tiles


def test_self_check_passes():
    report = self_check(DEVICE, dim=20, seqlen=19, dstate=4)
    assert report["ok"], report
    assert set(report["max_rel_err"]) == {"y", *GRAD_NAMES}


def test_rejects_bad_shapes():
    inputs = make(1, 8, 5, 4, torch.float32)
    with pytest.raises(AssertionError, match="B must be"):
        selective_scan_train(inputs["u"], inputs["delta"], inputs["A"], inputs["B"][:, :, :4], inputs["C"])
