import pytest
import torch

from kernels.launch import ssd_config
from kernels.ssd_chunk_scan import ssd_chunk_scan, ssd_chunk_scan_ref
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err

CHUNK = ssd_config(12, 16, DEVICE).block_m  # the chunk length the kernel uses here


def make(batch, seqlen, nheads, headdim, ngroups, dstate, dtype, seed=0, d_per_channel=False, with_z=False):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(DEVICE)

    # B and C as slices of one tensor (as in Hugging Face's split of xBC), x position-major
    BC = r(batch, seqlen, 2 * ngroups, dstate).to(dtype)
    return dict(
        x=r(batch, seqlen, nheads, headdim).to(dtype), dt=r(batch, seqlen, nheads, scale=0.5).to(dtype),
        A=-torch.rand(nheads, generator=g).to(DEVICE) - 0.2, B=BC[:, :, :ngroups], C=BC[:, :, ngroups:],
        D=r(nheads, headdim) if d_per_channel else r(nheads),
        z=r(batch, seqlen, nheads, headdim).to(dtype) if with_z else None, dt_bias=r(nheads, scale=0.3),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "seqlen", [1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5], ids=lambda L: f"L{L}"
)
def test_chunk_boundaries(seqlen, dtype, poison):
    args = make(2, seqlen, 4, 12, 2, 16, dtype)
    y, h = ssd_chunk_scan(**args, dt_softplus=True)
    y_ref, h_ref = ssd_chunk_scan_ref(**args, dt_softplus=True)
    assert y.dtype == dtype and h.dtype == torch.float32
    # low-precision inputs: the carried state enters the tensor-core dots in the input dtype
    assert rel_err(y, y_ref) < REL_TOL[dtype] * 2
    assert rel_err(h, h_ref) < max(REL_TOL[dtype] * 2, 1e-4)


def test_options_initial_state_z_limits(poison):
    args = make(1, 21, 6, 20, 3, 24, torch.float32, seed=1, d_per_channel=True, with_z=True)
    h0 = torch.randn(1, 6, 20, 24, device=DEVICE)
    kw = dict(dt_softplus=True, dt_limit=(0.05, 0.8), initial_states=h0)
    y, h = ssd_chunk_scan(**args, **kw)
    y_ref, h_ref = ssd_chunk_scan_ref(**args, **kw)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4


def test_continuing_from_final_state_equals_one_pass(poison):
    args = make(1, 2 * CHUNK + 3, 2, 16, 1, 16, torch.float32, seed=2)
    y_full, h_full = ssd_chunk_scan(**args, dt_softplus=True)
    cut = CHUNK + 2
    first = {k: (v[:, :cut] if k in ("x", "dt", "B", "C") else v) for k, v in args.items()}
    second = {k: (v[:, cut:] if k in ("x", "dt", "B", "C") else v) for k, v in args.items()}
    y1, h1 = ssd_chunk_scan(**first, dt_softplus=True)
    y2, h2 = ssd_chunk_scan(**second, dt_softplus=True, initial_states=h1)
    assert rel_err(torch.cat([y1, y2], dim=1), y_full) < 1e-4 and rel_err(h2, h_full) < 1e-4


def test_rejects_mismatched_b_c_strides():
    args = make(1, 5, 2, 16, 1, 16, torch.float32)
    args["C"] = args["C"].contiguous()
    with pytest.raises(AssertionError, match="C must have B's strides"):
        ssd_chunk_scan(**args)
