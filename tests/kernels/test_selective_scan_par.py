"""kernels/selective_scan_par.py: the position-parallel scan (tl.associative_scan inside a program) against the
reference: odd shapes, several position tiles, both layouts, optional inputs, a carried initial state."""

import pytest
import torch

from kernels.selective_scan import selective_scan_ref as selective_scan_par_ref
from kernels.selective_scan_par import selective_scan_par
from tests.kernels.conftest import DEVICE, DTYPES, REL_TOL, rel_err
from tests.kernels.test_selective_scan import make

SHAPES = [
    pytest.param((2, 19, 37, 16), id="B2-D19-L37-N16"),  # 5 tiles of 8, the last ragged; a ragged channel block
    pytest.param((1, 5, 1, 4), id="B1-D5-L1-N4"),
    pytest.param((1, 16, 16, 3), id="B1-D16-L16-N3"),  # whole tiles and blocks, odd state count
]


@pytest.mark.parametrize("all_states", [False, True], ids=["per-state", "all-states"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(shape, dtype, all_states, poison):
    u, delta, A, B, C, D, z, bias = make(*shape, dtype)
    y, h = selective_scan_par(u, delta, A, B, C, D, z, bias, True, block_l=8, block_d=8, all_states=all_states)
    y_ref, h_ref = selective_scan_par_ref(u, delta, A, B, C, D, z, bias, True)
    assert y.dtype == dtype and h.dtype == torch.float32 and y.stride(1) == 1
    assert rel_err(y, y_ref) < REL_TOL[dtype]
    assert rel_err(h, h_ref) < REL_TOL[torch.float32] * 10


@pytest.mark.parametrize("layout", ["chan", "len"])
def test_layouts_and_optional_inputs(layout, poison):
    """Channels- or seqlen-contiguous inputs read in place; no D, z, bias or softplus."""
    u, delta, A, B, C, *_ = make(2, 12, 21, 16, torch.float32, seed=1)
    if layout == "chan":
        u, delta, B, C = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (u, delta, B, C))
    delta = delta.abs()
    y, h = selective_scan_par(u, delta, A, B, C, block_l=16, block_d=8)
    y_ref, h_ref = selective_scan_par_ref(u, delta, A, B, C)
    assert rel_err(y, y_ref) < 1e-4 and rel_err(h, h_ref) < 1e-4


@pytest.mark.parametrize("all_states", [False, True], ids=["per-state", "all-states"])
def test_initial_state_continues_a_sequence(all_states, poison):
    """Scanning L1 then L2 positions from the carried state equals scanning L1 + L2 at once."""
    u, delta, A, B, C, D, z, bias = make(1, 9, 30, 16, torch.float32, seed=2)
    y_full, h_full = selective_scan_par(u, delta, A, B, C, D, z, bias, True, block_l=8, block_d=8,
                                          all_states=all_states)
    cut = 13
    a = [t[..., :cut] for t in (u, delta, B, C, z)]
    y1, h1 = selective_scan_par(a[0], a[1], A, a[2], a[3], D, a[4], bias, True, block_l=8, block_d=8)
    r = [t[..., cut:] for t in (u, delta, B, C, z)]
    y2, h2 = selective_scan_par(r[0], r[1], A, r[2], r[3], D, r[4], bias, True, initial_state=h1, block_l=4,
                                block_d=16, all_states=all_states)
    assert rel_err(torch.cat([y1, y2], dim=-1), y_full) < 1e-4 and rel_err(h2, h_full) < 1e-4


def test_empty_sequence_and_bad_blocks(poison):
    u, delta, A, B, C, D, z, bias = make(2, 8, 0, 16, torch.float32)
    h0 = torch.randn(2, 8, 16, device=DEVICE)
    y, h = selective_scan_par(u, delta, A, B, C, D, z, bias, True, initial_state=h0)
    assert y.shape == (2, 8, 0) and torch.equal(h, h0)
    with pytest.raises(AssertionError, match="block_l must be a power of two"):
        selective_scan_par(u, delta, A, B, C, block_l=12)


def test_selective_scan_takes_it_for_split_seqlen_contiguous_inputs(poison, monkeypatch):
    """With par_len set, `selective_scan` hands seqlen-contiguous inputs that it would split to this kernel
    (channels-contiguous ones, and grids it would not split, keep the channel-parallel scan): same results."""
    import dataclasses

    from kernels import selective_scan as scan

    cfg = dataclasses.replace(scan.scan_config(16, "cpu"), par_len=(8, 8, 4))
    monkeypatch.setattr(scan, "scan_config", lambda *a, **k: cfg)
    calls = []
    real = scan.selective_scan_par
    monkeypatch.setattr(scan, "selective_scan_par", lambda *a, **k: calls.append(k) or real(*a, **k))
    u, delta, A, B, C, D, z, bias = make(1, 12, 30, 16, torch.bfloat16, seed=4)  # seqlen-contiguous
    assert scan._n_chunks(1, 12, 30, cfg) > 1
    y, h = scan.selective_scan(u, delta, A, B, C, D, z, bias, True)
    y_ref, h_ref = selective_scan_par_ref(u, delta, A, B, C, D, z, bias, True)
    assert calls == [{"block_l": 8, "block_d": 8, "num_warps": 4}]
    assert rel_err(y, y_ref) < REL_TOL[torch.bfloat16] and rel_err(h, h_ref) < 1e-3
    chan = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (u, delta, z)]
    scan.selective_scan(chan[0], chan[1], A, B, C, D, chan[2], bias, True)
    assert len(calls) == 1  # channels-contiguous: the split scan
