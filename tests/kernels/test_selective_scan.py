import pytest
import torch
import triton
import triton.language as tl

from kernels.selective_scan import _exp2_poly, selective_scan, selective_scan_ref
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err

SHAPES = [
    pytest.param((2, 67, 33, 16), id="B2-D67-L33-N16"),
    pytest.param((1, 5, 1, 4), id="B1-D5-L1-N4"),
    pytest.param((1, 37, 17, 8), id="B1-D37-L17-N8"),
    pytest.param((2, 5, 19, 16), id="B2-D5-L19-N16"),
]


def make(batch, dim, seqlen, dstate, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(DEVICE)

    u = r(batch, dim, seqlen).to(dtype)
    delta = r(batch, dim, seqlen, scale=0.5).to(dtype)
    A = -torch.rand(dim, dstate, generator=g).to(DEVICE) * 2 - 0.1
    B = r(batch, dstate, seqlen).to(dtype)
    C = r(batch, dstate, seqlen).to(dtype)
    D = r(dim)
    z = r(batch, dim, seqlen).to(dtype)
    bias = r(dim, scale=0.3)
    return u, delta, A, B, C, D, z, bias


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(shape, dtype, poison):
    u, delta, A, B, C, D, z, bias = make(*shape, dtype)
    y, h = selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert y.dtype == dtype and h.dtype == torch.float32
    assert rel_err(y, y_ref) < REL_TOL[dtype]
    assert rel_err(h, h_ref) < REL_TOL[torch.float32] * 10


def test_optional_inputs_and_strided_layout(poison):
    """No D, no z, no bias, no softplus; u/delta/z given position-major (as Hugging Face's views are)."""
    batch, dim, seqlen, dstate = 2, 19, 21, 16
    u, delta, A, B, C, *_ = make(batch, dim, seqlen, dstate, torch.float32, seed=1)
    u_t = u.transpose(1, 2).contiguous().transpose(1, 2)  # stride(1) == 1
    delta = delta.abs()
    y, h = selective_scan(u_t, delta, A, B, C)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4


def test_initial_state_continues_a_sequence(poison):
    """Scanning L1 then L2 positions from the carried state equals scanning L1 + L2 at once."""
    u, delta, A, B, C, D, z, bias = make(1, 24, 30, 16, torch.float32, seed=2)
    y_full, h_full = selective_scan(u, delta, A, B, C, D, z, bias, True)
    cut = 13
    parts = [t[..., :cut].contiguous() for t in (u, delta, B, C, z)]
    y1, h1 = selective_scan(parts[0], parts[1], A, parts[2], parts[3], D, parts[4], bias, True)
    rest = [t[..., cut:].contiguous() for t in (u, delta, B, C, z)]
    y2, h2 = selective_scan(rest[0], rest[1], A, rest[2], rest[3], D, rest[4], bias, True, initial_state=h1)
    assert rel_err(torch.cat([y1, y2], dim=-1), y_full) < 1e-4
    assert rel_err(h2, h_full) < 1e-4


def test_rejects_bad_shapes():
    u, delta, A, B, C, *_ = make(1, 8, 5, 4, torch.float32)
    with pytest.raises(AssertionError, match="B must be"):
        selective_scan(u, delta, A, B[:, :, :4], C)
    with pytest.raises(AssertionError, match="A must be fp32"):
        selective_scan(u, delta, A.half(), B, C)


def test_chunking_kicks_in_only_when_programs_are_few():
    """The chunk-parallel path (3 passes) covers batch-1 prefill; the tests above run it (CPU config). On
    NVIDIA it splits only below split_below programs (measured: a split at B16 D4096 and B64 D2048 was 1.7x
    slower than none, and 2.4-5.5x faster at B8 D1536 and B1 D4096), into enough chunks for min_programs."""
    import dataclasses

    from kernels.launch import SPLIT_PROGRAMS, scan_config
    from kernels.selective_scan import _n_chunks

    gpu = scan_config(16, "cuda")
    assert scan_config(16, "cuda", 64, 2048) == gpu  # one NVIDIA config at every shape
    assert _n_chunks(16, 4096, 2048, gpu) == 1  # 1024 2-warp programs: no split
    assert _n_chunks(64, 2048, 2048, gpu) == 1  # 2048
    assert _n_chunks(1, 4096, 2048, gpu) == 2048 // gpu.chunk_min  # 64 programs: as many chunks as chunk_min allows
    programs = 8 * 1536 // gpu.block_d  # 192: enough chunks for SPLIT_PROGRAMS
    assert _n_chunks(8, 1536, 4096, gpu) == -(-SPLIT_PROGRAMS // programs)
    assert _n_chunks(1, 1536, 2 * gpu.chunk_min - 1, gpu) == 1  # too short to split
    # split_below 0: the threshold is min_programs itself (the AMD and interpreter configs)
    assert _n_chunks(16, 4096, 2048, dataclasses.replace(gpu, split_below=0)) > 1
    assert scan_config(16, "hip", 64, 2048).block_d == 128  # not measured on AMD: unchanged
    cpu = scan_config(16, "cpu")
    assert scan_config(16, "cpu", 64, 2048) == cpu
    assert _n_chunks(2, 67, 33, cpu) == 2 and _n_chunks(1, 12, 30, cpu) > 1


@pytest.mark.parametrize("shape", [pytest.param((2, 67, 33, 16), id="B2-D67-L33-chunked"),
                                   pytest.param((1, 5, 1, 4), id="B1-D5-L1"),
                                   pytest.param((3, 40, 6, 16), id="B3-D40-L6-one-chunk")])
@pytest.mark.parametrize("depth", [1, 2])
def test_prefetch_variant_matches_reference(shape, depth, poison, monkeypatch):
    """PREFETCH = 1, 2 (loads issued that many positions ahead) computes the same scan, chunked or not."""
    import dataclasses

    from kernels import selective_scan as scan

    base = scan.scan_config(16, "cpu")
    monkeypatch.setattr(scan, "scan_config", lambda *a, **k: dataclasses.replace(base, prefetch=depth))
    u, delta, A, B, C, D, z, bias = make(*shape, torch.float32, seed=3)
    y, h = scan.selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4
    y2, _ = scan.selective_scan(u, delta, A, B, C)  # no D, z, bias: the optional branches
    assert rel_err(y2, selective_scan_ref(u, delta, A, B, C)[0]) < 1e-4


@pytest.mark.parametrize("shape", [pytest.param((2, 64, 33, 16), id="B2-D64-L33-N16-even-chunked"),
                                   pytest.param((3, 32, 7, 16), id="B3-D32-L7-N16-even"),
                                   pytest.param((1, 37, 17, 8), id="B1-D37-L17-N8-odd")])
@pytest.mark.parametrize("layout", ["chan", "len"])
@pytest.mark.parametrize("variant", ["plain", "bc_fp32", "bc_fp32+split", "transpose_len"])
def test_layout_variants_match_reference(shape, layout, variant, poison, monkeypatch):
    """Channels or seqlen contiguous inputs; B and C copied to fp32 (bc_fp32; split scans too with bc_fp32_split)
    and seqlen-contiguous inputs copied to channels-contiguous (transpose_len) first, or not; channels and states
    that fill their blocks (unmasked loads, EVEN_D / EVEN_N) or not; bf16 inputs: the same scan."""
    import dataclasses

    from kernels import selective_scan as scan

    base = scan.scan_config(shape[3], "cpu")
    flags = {"plain": {}, "bc_fp32+split": {"bc_fp32": True, "bc_fp32_split": True}}.get(variant, {variant: True})
    cfg = dataclasses.replace(base, **flags)
    monkeypatch.setattr(scan, "scan_config", lambda *a, **k: cfg)
    u, delta, A, B, C, D, z, bias = make(*shape, torch.bfloat16, seed=5)
    if layout == "chan":
        u, delta, z = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (u, delta, z))
        B, C = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (B, C))
    y, h = scan.selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert y.dtype == torch.bfloat16 and y.stride(1) == 1  # y is channels-contiguous in every case
    assert rel_err(y, y_ref) < REL_TOL[torch.bfloat16] and rel_err(h, h_ref) < REL_TOL[torch.float32] * 10


def test_empty_sequence_returns_the_initial_state(poison):
    """seqlen 0: an empty y and the initial state (or zeros); no kernel reads a position that is not there."""
    u, delta, A, B, C, D, z, bias = make(2, 8, 0, 16, torch.float32)
    h0 = torch.randn(2, 8, 16, device=DEVICE)
    y, h = selective_scan(u, delta, A, B, C, D, z, bias, True, initial_state=h0)
    assert y.shape == (2, 8, 0) and torch.equal(h, h0) and h.data_ptr() != h0.data_ptr()
    assert torch.equal(selective_scan(u, delta, A, B, C)[1], torch.zeros(2, 8, 16, device=DEVICE))


@pytest.mark.parametrize("shape", [pytest.param((2, 67, 33, 16), id="B2-D67-L33-N16-chunked"),
                                   pytest.param((1, 37, 17, 8), id="B1-D37-L17-N8"),
                                   pytest.param((2, 5, 19, 32), id="B2-D5-L19-N32")])
@pytest.mark.parametrize("poly", [1, 2])
def test_poly_exp_variant_matches_reference(shape, poly, poison, monkeypatch):
    """POLY = 1, 2 (a quarter / half of the states' exp2 through `_exp2_poly` on the FMA pipes) computes the
    same scan to fp32 accuracy, with N padded (8 -> 16) and larger than 16."""
    import dataclasses

    from kernels import selective_scan as scan

    base = scan.scan_config(shape[3], "cpu")
    monkeypatch.setattr(scan, "scan_config", lambda *a, **k: dataclasses.replace(base, poly=poly))
    u, delta, A, B, C, D, z, bias = make(*shape, torch.float32, seed=4)
    A = A * 8  # decays down to 2^-40 a step: the polynomial's clamp and exponent range are exercised
    y, h = scan.selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert rel_err(y, y_ref) < 1e-5 and rel_err(h, h_ref) < 1e-5


@triton.jit
def _exp2_poly_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(o_ptr + offs, _exp2_poly(tl.load(x_ptr + offs, mask=offs < n, other=0.0)), mask=offs < n)


def test_exp2_poly_accuracy():
    """`_exp2_poly` against exp2 in fp64 over [-130, 130] (clamped at +-125): relative error below 3e-7, about
    2.5 ulp (measured 2.2e-7: the polynomial's 7.5e-8 plus the rounding of its fp32 steps), the same order as
    the MUFU's ex2.approx.f32 that tl.exp2 compiles to on NVIDIA (2 ulp)."""
    x = torch.cat([torch.linspace(-130, 130, 4001), torch.tensor([-0.5, 0.5, 0.0, -1e-8])]).to(DEVICE)
    out = torch.empty_like(x)
    _exp2_poly_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    ref = torch.exp2(x.double().clamp(-125, 125))
    assert ((out.double() - ref).abs() / ref).max() < 3e-7
