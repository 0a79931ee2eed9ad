"""The CPU fast path (`kernels/cpu_*.py`, dispatch path "cpu-chunked") against the PyTorch references: odd
sizes, tiles / chunks / segments that end mid-sequence, outputs poisoned with NaN, per-dtype bounds, and
prefill-then-decode equal to one prefill over everything."""
# ruff: noqa: E402  (the kernel imports follow the skip: numba is not on the GPU image)

import numpy as np
import pytest
import torch

pytest.importorskip("numba", reason="the CPU fast path needs numba (not on the GPU image)")

from numba import njit

from kernels import dispatch
from kernels.causal_conv1d import causal_conv1d_ref, causal_conv1d_update_ref
from kernels.cpu_conv import causal_conv1d_cpu
from kernels.cpu_mamba1_step import bind_mamba1_step, mamba1_step_cpu, mamba1_step_ref
from kernels.cpu_mamba2_step import bind_mamba2_step, mamba2_step_cpu, mamba2_step_ref
from kernels.cpu_norm import bind_residual_norm, rms_norm_cpu
from kernels.cpu_scan import _exp2, _softplus, in_parent, selective_scan_cpu
from kernels.cpu_ssd import ssd_chunk_scan_cpu
from kernels.cpu_ssd_scan import _columns, ssd_scan_cpu
from kernels.cpu_step import causal_conv1d_update_cpu, selective_state_update_cpu
from kernels.rms_norm import rms_norm_ref
from kernels.selective_scan import selective_scan_ref
from kernels.selective_state_update import selective_state_update_ref
from kernels.ssd_chunk_scan import ssd_chunk_scan_ref
from kernels.ssd_train import _random_problem
from tests.kernels.conftest import DTYPES, REL_TOL, rel_err
from tests.kernels.test_selective_scan import make as make_scan


def rnd(*s, seed=0, scale=1.0):
    return torch.randn(*s, generator=torch.Generator().manual_seed(seed)) * scale


@njit
def _exp2_all(t):
    out = np.empty_like(t)
    for i in range(t.shape[0]):
        out[i] = _exp2(t[i])
    return out


@njit
def _softplus_all(t):
    out = np.empty_like(t)
    for i in range(t.shape[0]):
        out[i] = _softplus(t[i])
    return out


def test_exp2_polynomial_is_within_fp32_rounding():
    t = torch.linspace(-125.0, 20.0, 2_000_001)
    got = torch.from_numpy(_exp2_all(t.numpy()))  # fp32 in, as in the kernels
    want = torch.exp2(t.double())
    assert ((got.double() - want).abs() / want).max().item() < 3e-7


def test_softplus_is_within_fp32_rounding():
    """The fused softplus of delta (log1p through atanh's series) against float64, over and past the threshold
    of 20 where F.softplus returns x."""
    t = torch.linspace(-60.0, 60.0, 1_200_001)
    got = torch.from_numpy(_softplus_all(t.numpy())).double()
    want = torch.nn.functional.softplus(t.double(), threshold=1e9)
    rel = (got - want).abs() / want
    # far left softplus(x) ~ e^x, and rounding x * log2(e) to fp32 costs ~|x| * 6e-8 relative
    assert rel.max().item() < 4e-6
    assert rel[t > -8].max().item() < 1e-6


# batch, dim, seqlen, dstate, tile_l: dim not a multiple of 16, odd N, tiles ending mid-sequence
SCAN_SHAPES = [
    pytest.param((2, 67, 33, 16, 8), id="B2-D67-L33-N16-tile8"),
    pytest.param((1, 5, 1, 4, 128), id="B1-D5-L1-N4"),
    pytest.param((1, 37, 17, 7, 16), id="B1-D37-L17-N7-tile16"),
    pytest.param((2, 32, 130, 16, 64), id="B2-D32-L130-N16-tile64"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SCAN_SHAPES)
def test_scan_matches_reference(shape, dtype, poison):
    batch, dim, seqlen, dstate, tile = shape
    u, delta, A, B, C, D, z, bias = make_scan(batch, dim, seqlen, dstate, dtype)
    h0 = rnd(batch, dim, dstate, seed=9)
    y, h = selective_scan_cpu(u, delta, A, B, C, D, z, bias, True, initial_state=h0, tile_l=tile)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True, initial_state=h0)
    assert y.dtype == dtype and y.shape == y_ref.shape and h.dtype == torch.float32
    assert rel_err(y, y_ref) < REL_TOL[dtype]
    assert rel_err(h, h_ref) < REL_TOL[torch.float32] * 10


def test_scan_optional_inputs_absent(poison):
    u, delta, A, B, C, *_ = make_scan(2, 19, 21, 16, torch.float32, seed=1)
    delta = delta.abs()
    y, h = selective_scan_cpu(u, delta, A, B, C, tile_l=5)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4


# batch, seqlen, nheads, headdim, ngroups, dstate, chunk, segment
SSD_SHAPES = [
    pytest.param((2, 45, 4, 8, 2, 16, 16, 32), id="L45-Q16-S32-G2"),
    pytest.param((1, 1, 2, 4, 1, 8, 64, 1024), id="L1"),
    pytest.param((1, 130, 4, 6, 2, 12, 8, 64), id="L130-Q8-S64"),
    pytest.param((2, 64, 2, 8, 1, 16, 64, 64), id="L64-exact-chunk"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SSD_SHAPES)
def test_ssd_matches_reference(shape, dtype, poison):
    batch, seqlen, nheads, headdim, ngroups, dstate, chunk, segment = shape
    args = _random_problem(batch, seqlen, nheads, headdim, ngroups, dstate, "cpu", dtype=dtype)
    h0 = rnd(batch, nheads, headdim, dstate, seed=5)
    y, h = ssd_chunk_scan_cpu(**args, dt_softplus=True, initial_states=h0, chunk=chunk, segment=segment)
    y_ref, h_ref = ssd_chunk_scan_ref(**args, dt_softplus=True, initial_states=h0)
    assert y.dtype == dtype and h.dtype == torch.float32
    assert rel_err(y, y_ref) < REL_TOL[dtype]
    assert rel_err(h, h_ref) < REL_TOL[torch.float32] * 10
    y2, h2 = ssd_scan_cpu(**args, dt_softplus=True, initial_states=h0)  # the recurrence the CPU path runs
    assert y2.dtype == dtype and h2.dtype == torch.float32
    assert rel_err(y2, y_ref) < REL_TOL[dtype]
    assert rel_err(h2, h_ref) < REL_TOL[torch.float32] * 10


@pytest.mark.parametrize("d_kind", ["per-head", "per-channel", "none"])
def test_ssd_recurrence_d_forms_and_gate(d_kind, poison):
    """D as [H], [H, P] or absent, and a z gate, as the recurrence takes them (x and z row slices of one tensor)."""
    args = _random_problem(2, 37, 4, 6, 2, 10, "cpu", dtype=torch.float32)
    args["D"] = {"per-head": rnd(4, seed=7), "per-channel": rnd(4, 6, seed=7), "none": None}[d_kind]
    xz = rnd(2, 37, 4, 12, seed=8)
    args["x"], args["z"] = xz[..., :6], xz[..., 6:]
    y, h = ssd_scan_cpu(**args, dt_softplus=True, dt_limit=(0.001, 0.5))
    y_ref, h_ref = ssd_chunk_scan_ref(**args, dt_softplus=True, dt_limit=(0.001, 0.5))
    assert rel_err(y, y_ref) < 1e-5 and rel_err(h, h_ref) < 1e-5


@pytest.mark.parametrize("tied", [pytest.param(False, id="mamba1"), pytest.param(True, id="mamba2")])
@pytest.mark.parametrize("with_z", [pytest.param(True, id="z"), pytest.param(False, id="no-z")])
def test_state_update_matches_reference(tied, with_z, poison):
    if tied:  # 3 sequences, 4 heads of 5 channels, 2 groups, N 16; x / z row slices of one tensor
        st = rnd(3, 4, 5, 16, seed=1)
        xz = rnd(3, 2, 4, 5, seed=2)
        x, z = xz[:, 0], xz[:, 1] if with_z else None
        dt, A, D, bias = rnd(3, 4, seed=3), -torch.rand(4) - 0.1, rnd(4, seed=4), rnd(4, seed=5)
        BC = rnd(3, 2, 2, 16, seed=6)
    else:  # Mamba-1: 3 sequences, 37 channels, N 8
        st = rnd(3, 37, 8, seed=1)
        xz = rnd(3, 74, seed=2)
        x, z = xz[:, :37], xz[:, 37:] if with_z else None
        dt, A, D, bias = rnd(3, 37, seed=3), -torch.rand(37, 8) - 0.1, rnd(37, seed=4), rnd(37, seed=5)
        BC = rnd(3, 2, 8, seed=6)
    B, C = BC[:, 0], BC[:, 1]
    st_ref = st.clone()
    out = selective_state_update_cpu(st, x, dt, A, B, C, D, z, bias, True)
    out_ref = selective_state_update_ref(st_ref, x, dt, A, B, C, D, z, bias, True)
    assert rel_err(out, out_ref) < 1e-5 and rel_err(st, st_ref) < 1e-5


@pytest.mark.parametrize("slots", [pytest.param(3, id="S3=K-1"), pytest.param(4, id="S4=K"), pytest.param(6, id="S6")])
def test_conv_update_matches_reference(slots, poison):
    state, x, w, b = rnd(2, 19, slots, seed=1), rnd(2, 19, seed=2), rnd(19, 4, seed=3), rnd(19, seed=4)
    state_ref = state.clone()
    out = causal_conv1d_update_cpu(x, state, w, b, "silu")
    assert rel_err(out, causal_conv1d_update_ref(x, state_ref, w, b, "silu")) < 1e-5
    assert torch.equal(state, state_ref)


@pytest.mark.parametrize("shape", [pytest.param((2, 67, 33), id="B2-D67-L33"), pytest.param((1, 5, 1), id="L1")])
def test_conv_matches_reference(shape, poison):
    batch, dim, seqlen = shape
    x = rnd(batch, seqlen, dim, seed=1).transpose(1, 2)  # Hugging Face's position-major view
    w, b = rnd(dim, 4, seed=2), rnd(dim, seed=3)
    out = causal_conv1d_cpu(x, w, b, "silu", tile_l=7)
    assert out.stride(1) == 1  # position-major like the Triton op
    assert rel_err(out, causal_conv1d_ref(x, w, b, "silu")) < 1e-5
    assert rel_err(causal_conv1d_cpu(x.contiguous(), w, None), causal_conv1d_ref(x, w, None)) < 1e-5


@pytest.mark.parametrize("rows", [pytest.param(1, id="rows1-serial"), pytest.param(100, id="rows100-parallel")])
@pytest.mark.parametrize("kind", ["residual", "gated-groups", "gated-strided", "plain", "round-input",
                                  "round-input-first-block", "odd-width"])
def test_norm_matches_reference(rows, kind, poison):
    x, res, z, w = rnd(rows, 48, seed=1), rnd(rows, 48, seed=2), rnd(rows, 48, seed=3), rnd(48, seed=4)
    if kind == "odd-width":  # 37 features: the partial sums' tail
        x, w = x[:, :37].contiguous(), w[:37].contiguous()
    kw = {"residual": dict(residual=res), "gated-groups": dict(z=z, group_size=16), "plain": {},
          "gated-strided": dict(z=rnd(rows, 96, seed=5)[:, 48:]),  # a gate sliced out of in_proj's output
          "round-input": dict(residual=res, round_input=True), "odd-width": dict(round_input=True),
          "round-input-first-block": dict(round_input=True)}[kind]  # h = x: the first block has no residual
    out, h = rms_norm_cpu(x, w, 1e-5, **kw)
    out_ref, h_ref = rms_norm_ref(x, w, 1e-5, **kw)
    assert rel_err(out, out_ref) < 1e-5
    assert (h is None) == (h_ref is None) and (h is None or torch.equal(h, h_ref))


@pytest.mark.parametrize("rows", [pytest.param(1, id="rows1-serial"), pytest.param(100, id="rows100-parallel")])
def test_bound_residual_norm_matches_reference(rows, poison):
    """The decode loop's norm: weight bound once, buffers reused; the first block (no residual) then two more,
    each reading the previous call's h as its residual, as `backend/generation/cpu_decode.py` chains them."""
    w = rnd(37, seed=4)
    norms = [bind_residual_norm(w, 1e-5, rows) for _ in range(3)]
    res = res_ref = None
    for i, norm in enumerate(norms):
        x = rnd(rows, 37, seed=10 + i)
        out, res = norm(x, res)
        out_ref, res_ref = rms_norm_ref(x, w, 1e-5, residual=res_ref, round_input=True)
        assert rel_err(out, out_ref) < 1e-5 and torch.equal(res, res_ref)
    with pytest.raises(AssertionError, match="must be fp32"):
        norms[0](rnd(rows + 1, 37), None)


def test_prefill_then_decode_equals_one_prefill(poison):
    """Mamba-1 and Mamba-2: the CPU prefill of L0 positions, then CPU decode steps, equals one CPU prefill."""
    u, delta, A, B, C, D, z, bias = make_scan(1, 24, 21, 16, torch.float32, seed=3)
    L0 = 17
    y_full, _ = selective_scan_cpu(u, delta, A, B, C, D, z, bias, True, tile_l=8)
    y0, state = selective_scan_cpu(*(t[..., :L0] for t in (u, delta)), A, B[..., :L0], C[..., :L0], D,
                                   z[..., :L0], bias, True, tile_l=8)
    col = [lambda t, v=v: v[..., t].contiguous() for v in (u, delta, B, C, z)]
    ys = [selective_state_update_cpu(state, col[0](t), col[1](t), A, col[2](t), col[3](t), D, col[4](t), bias, True)
          for t in range(L0, 21)]
    assert rel_err(torch.cat([y0, torch.stack(ys, -1)], -1), y_full) < 1e-4

    args = _random_problem(1, 22, 4, 8, 2, 16, "cpu", with_z=False)
    y_full, _ = ssd_chunk_scan_cpu(**args, dt_softplus=True, chunk=8)
    head = {k: (v[:, :19] if k in ("x", "dt", "B", "C") else v) for k, v in args.items()}
    for prefill in (lambda a: ssd_chunk_scan_cpu(**a, dt_softplus=True, chunk=8),
                    lambda a: ssd_scan_cpu(**a, dt_softplus=True)):  # the chunked SSD and the recurrence
        y0, state = prefill(head)
        ys = [selective_state_update_cpu(state, args["x"][:, t], args["dt"][:, t], args["A"], args["B"][:, t],
                                         args["C"][:, t], args["D"], None, args["dt_bias"], True)
              for t in range(19, 22)]
        assert rel_err(torch.cat([y0, torch.stack(ys, 1)], 1), y_full) < 1e-4


@pytest.mark.parametrize("shape", [pytest.param((1, 512, 16, 16, 4, 4), id="toy-B1-D512-N16-R16"),
                                   pytest.param((3, 37, 6, 5, 4, 4), id="B3-D37-N6-R5"),
                                   pytest.param((2, 19, 4, 3, 3, 6), id="K3-S6")])
@pytest.mark.parametrize("bound", [pytest.param(False, id="call"), pytest.param(True, id="bound")])
def test_fused_mamba1_step_matches_the_separate_ops(shape, bound, poison):
    """The CPU path's whole Mamba-1 step between in_proj and out_proj against the references it replaces, three
    steps in a row (the conv and SSM states carried), xz a row slice of a wider tensor; called, or bound once as
    the decode loop binds it."""
    batch, D, N, R, K, S = shape
    xz_all = rnd(3, batch, 2 * D + 5, seed=1)
    conv_w, conv_b = rnd(D, K, seed=2), rnd(D, seed=3)
    x_proj_t, dt_proj_t = rnd(D, R + 2 * N, seed=4, scale=0.2), rnd(R, D, seed=5, scale=0.3)
    dt_bias, A, Dv = rnd(D, seed=6, scale=0.3), -torch.rand(D, N) - 0.2, rnd(D, seed=7)
    cs, st = rnd(batch, D, S, seed=8), rnd(batch, D, N, seed=9)
    cs_ref, st_ref = cs.clone(), st.clone()
    step = bind_mamba1_step(cs, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, st) if bound else None
    for t in range(3):
        xz = xz_all[t, :, 2:2 + 2 * D]
        y = step(xz).clone() if bound else mamba1_step_cpu(xz, cs, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A,
                                                           Dv, st)
        y_ref = mamba1_step_ref(xz, cs_ref, conv_w, conv_b, x_proj_t, dt_proj_t, dt_bias, A, Dv, st_ref)
        assert not y.isnan().any() and rel_err(y, y_ref) < 1e-5
        assert rel_err(st, st_ref) < 1e-5 and torch.equal(cs, cs_ref)


@pytest.mark.parametrize("shape", [pytest.param((1, 8, 64, 64, 1, 4, 4, 512), id="toy-B1-H8-P64-N64"),
                                   pytest.param((2, 4, 6, 20, 2, 4, 4, 8), id="B2-H4-P6-N20-G2-normgroups"),
                                   pytest.param((3, 3, 5, 7, 3, 3, 5, 15), id="N7-K3-S5-G3")])
@pytest.mark.parametrize("bound", [pytest.param(False, id="call"), pytest.param(True, id="bound")])
def test_fused_mamba2_step_matches_the_separate_ops(shape, bound, poison):
    """The CPU path's whole Mamba-2 step (conv, state update, gated norm) against the references it replaces,
    three steps in a row, proj a row slice of a wider tensor; N not a multiple of the 16 partial sums."""
    batch, H, P, N, G, K, S, NG = shape
    I = H * P
    CD = I + 2 * G * N
    proj_all = rnd(3, batch, I + CD + H + 3, seed=1)
    conv_w, conv_b = rnd(CD, K, seed=2), rnd(CD, seed=3)
    dt_bias, A, Dv, norm_w = rnd(H, seed=4, scale=0.3), -torch.rand(H) - 0.2, rnd(H, seed=5), rnd(I, seed=6)
    cs, st = rnd(batch, CD, S, seed=7), rnd(batch, H, P, N, seed=8)
    cs_ref, st_ref = cs.clone(), st.clone()
    step = bind_mamba2_step(cs, conv_w, conv_b, dt_bias, A, Dv, st, norm_w, 1e-5, NG, G) if bound else None
    for t in range(3):
        proj = proj_all[t, :, 3:]
        y = step(proj).clone() if bound else mamba2_step_cpu(proj, cs, conv_w, conv_b, dt_bias, A, Dv, st, norm_w,
                                                             1e-5, NG, G)
        y_ref = mamba2_step_ref(proj, cs_ref, conv_w, conv_b, dt_bias, A, Dv, st_ref, norm_w, 1e-5, NG, G)
        assert not y.isnan().any() and rel_err(y, y_ref) < 1e-5
        assert rel_err(st, st_ref) < 1e-5 and torch.equal(cs, cs_ref)


def test_in_parent_views_a_slice_in_place_or_declines():
    wide = rnd(2, 7, 10, seed=1)
    for sl, col in ((slice(0, 4), 0), (slice(6, 10), 6), (slice(3, 7), 3)):
        view, c = in_parent(wide[:, :, sl])
        assert c == col and view.is_contiguous() and torch.equal(view[:, :, c:c + 4], wide[:, :, sl])
    flat = rnd(3 + 13 * 10 + 4, seed=2)  # rows of 10, storage ending right after the last slice row
    assert in_parent(flat.as_strided((2, 7, 4), (70, 10, 1), 3)) is None
    assert in_parent(wide.transpose(1, 2)) is None  # rows not contiguous
    assert in_parent(wide.double()[:, :, :4]) is None


def test_conv_and_scan_read_slices_of_in_projs_output(poison):
    """x and the gate z as the two halves of one [batch, L, 2 x dim] tensor, as the Mamba-1 mixer passes them."""
    batch, dim, L = 2, 48, 37
    xz = rnd(batch, L, 2 * dim, seed=1)
    x, z = xz[:, :, :dim].transpose(1, 2), xz[:, :, dim:].transpose(1, 2)
    w, b = rnd(dim, 4, seed=2), rnd(dim, seed=3)
    assert rel_err(causal_conv1d_cpu(x, w, b, "silu"), causal_conv1d_ref(x, w, b, "silu")) < 1e-5
    u, delta, A, B, C, D, _, bias = make_scan(batch, dim, L, 16, torch.float32, seed=4)
    y, h = selective_scan_cpu(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4


def test_ssd_recurrence_reads_x_b_c_in_place_from_the_conv_output(poison):
    """x, B and C as column slices of one [batch, L, H*P + 2*G*N] tensor, as the Mamba-2 mixer splits its conv
    output: read in place (`_columns` finds the parent), same result as contiguous copies and the reference."""
    batch, L, H, P, G, N = 2, 29, 4, 6, 2, 10
    args = _random_problem(batch, L, H, P, G, N, "cpu", dtype=torch.float32)
    xbc = rnd(batch, L, H * P + 2 * G * N, seed=9)
    x, B, C = torch.split(xbc, [H * P, G * N, G * N], dim=-1)
    args.update(x=x.reshape(batch, L, H, P), B=B.reshape(batch, L, G, N), C=C.reshape(batch, L, G, N), z=None)
    assert _columns(args["C"])[1] == H * P + G * N  # the slice is read where it is
    y, h = ssd_scan_cpu(**args, dt_softplus=True)
    y_copy, h_copy = ssd_scan_cpu(**{k: (v.contiguous() if torch.is_tensor(v) else v) for k, v in args.items()},
                                  dt_softplus=True)
    y_ref, h_ref = ssd_chunk_scan_ref(**args, dt_softplus=True)
    assert torch.equal(y, y_copy) and torch.equal(h, h_copy)
    assert rel_err(y, y_ref) < 1e-5 and rel_err(h, h_ref) < 1e-5


def test_dispatch_reports_the_cpu_path(monkeypatch):
    monkeypatch.delenv(dispatch.ENV, raising=False)
    assert dispatch.path_for("cpu") == "cpu-chunked"
    assert dispatch.op("selective_scan", "cpu") is selective_scan_cpu
    assert dispatch.op("ssd_chunk_scan", "cpu") is ssd_scan_cpu
    assert dispatch.fused("mamba1_step", "cpu") is mamba1_step_cpu
    assert dispatch.fused("mamba2_step", "cpu") is mamba2_step_cpu
    assert dispatch.fused("mamba1_step_bind", "cpu") is bind_mamba1_step
    assert dispatch.fused("residual_norm_bind", "cpu") is bind_residual_norm
    assert dispatch.describe("cpu")["path"] == "cpu-chunked" and not dispatch.uses_triton("cpu")
    monkeypatch.setenv(dispatch.ENV, "reference")
    assert dispatch.path_for("cpu") == "reference"
    assert dispatch.fused("mamba1_step", "cpu") is None  # the reference path runs the step as separate ops
    assert dispatch.fused("mamba2_step_bind", "cpu") is None
    monkeypatch.setenv(dispatch.ENV, "cpu-chunked")
    assert dispatch.path_for("cpu") == "cpu-chunked"
    if torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CPU tensors only"):
            dispatch.path_for("cuda")
