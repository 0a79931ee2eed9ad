"""kernels/selective_scan_len.py: the scan that reads seqlen-contiguous u, delta, z in (channels, P) tiles,
against the reference: odd shapes, ragged tiles and channel blocks, a carried state, and `selective_scan`
handing it unsplit seqlen-contiguous inputs when len_tile is set."""

import dataclasses

import pytest
import torch

from kernels import selective_scan as scan
from kernels.selective_scan import selective_scan_ref
from kernels.selective_scan_len import selective_scan_len
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err
from tests.kernels.test_selective_scan import make

SHAPES = [
    pytest.param((2, 19, 37, 16), id="B2-D19-L37-N16"),  # ragged last tile of 8 and channel block of 16
    pytest.param((1, 5, 1, 4), id="B1-D5-L1-N4"),
    pytest.param((1, 16, 16, 3), id="B1-D16-L16-N3"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(shape, dtype, poison):
    u, delta, A, B, C, D, z, bias = make(*shape, dtype)
    y, h = selective_scan_len(u, delta, A, B, C, D, z, bias, True, block_d=16, num_warps=1, p=8)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert y.dtype == dtype and h.dtype == torch.float32 and y.stride(1) == 1
    assert rel_err(y, y_ref) < REL_TOL[dtype]
    assert rel_err(h, h_ref) < REL_TOL[torch.float32] * 10


def test_initial_state_and_optional_inputs(poison):
    """From a carried state, equal to one scan over both parts; no D, z, bias or softplus."""
    u, delta, A, B, C, D, z, bias = make(1, 9, 30, 16, torch.float32, seed=2)
    y_full, h_full = selective_scan_len(u, delta, A, B, C, D, z, bias, True, block_d=16, p=4)
    cut = 13
    a = [t[..., :cut] for t in (u, delta, B, C, z)]
    r = [t[..., cut:] for t in (u, delta, B, C, z)]
    y1, h1 = selective_scan_len(a[0], a[1], A, a[2], a[3], D, a[4], bias, True, block_d=16, p=4)
    y2, h2 = selective_scan_len(r[0], r[1], A, r[2], r[3], D, r[4], bias, True, initial_state=h1, block_d=16, p=8)
    assert rel_err(torch.cat([y1, y2], dim=-1), y_full) < 1e-4 and rel_err(h2, h_full) < 1e-4
    y, h = selective_scan_len(u, delta.abs(), A, B, C, block_d=16, p=2)
    y_ref, h_ref = selective_scan_ref(u, delta.abs(), A, B, C)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4
    with pytest.raises(AssertionError, match="p must be a power of two"):
        selective_scan_len(u, delta, A, B, C, p=3)


def test_selective_scan_takes_it_for_unsplit_seqlen_contiguous_inputs(poison, monkeypatch):
    cfg = dataclasses.replace(scan.scan_config(16, "cpu"), len_tile=4, min_programs=0, bc_fp32=True,
                              transpose_len=True)
    monkeypatch.setattr(scan, "scan_config", lambda *a, **k: cfg)
    calls = []
    real = scan.selective_scan_len
    monkeypatch.setattr(scan, "selective_scan_len", lambda *a, **k: calls.append(k) or real(*a, **k))
    u, delta, A, B, C, D, z, bias = make(2, 12, 21, 16, torch.bfloat16, seed=4)  # seqlen-contiguous
    y, h = scan.selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    assert calls == [{"block_d": cfg.block_d, "num_warps": cfg.num_warps, "p": 4}]
    assert rel_err(y, y_ref) < REL_TOL[torch.bfloat16] and rel_err(h, h_ref) < 1e-3
    chan = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (u, delta, z)]
    scan.selective_scan(chan[0], chan[1], A, B, C, D, chan[2], bias, True)
    assert len(calls) == 1  # channels-contiguous: the channel-parallel scan
    assert DEVICE in ("cpu", "cuda")
