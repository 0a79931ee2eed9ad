"""Kernel-level consistency: a prefill scan followed by decode steps equals one scan over everything."""

import torch

from kernels.selective_scan import selective_scan
from kernels.selective_state_update import selective_state_update
from kernels.ssd_chunk_scan import ssd_chunk_scan
from tests.kernels.conftest import DEVICE, rel_err


def rnd(*s, seed):
    return torch.randn(*s, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def test_mamba1_scan_then_state_updates(poison):
    dim, dstate, L0, steps = 12, 8, 9, 3
    L = L0 + steps
    u, delta, z = rnd(1, dim, L, seed=0), rnd(1, dim, L, seed=1) * 0.5, rnd(1, dim, L, seed=2)
    A = -torch.rand(dim, dstate, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    B, C, D, bias = rnd(1, dstate, L, seed=4), rnd(1, dstate, L, seed=5), rnd(dim, seed=6), rnd(dim, seed=7)
    y_full, _ = selective_scan(u, delta, A, B, C, D, z, bias, True)
    y0, state = selective_scan(u[..., :L0], delta[..., :L0], A, B[..., :L0], C[..., :L0], D, z[..., :L0], bias, True)
    ys = [selective_state_update(state, u[..., t].contiguous(), delta[..., t].contiguous(), A, B[..., t].contiguous(),
                                 C[..., t].contiguous(), D, z[..., t].contiguous(), bias, True) for t in range(L0, L)]
    assert rel_err(torch.cat([y0, torch.stack(ys, -1)], -1), y_full) < 1e-4


def test_mamba2_chunk_scan_then_state_updates(poison):
    nheads, headdim, ngroups, dstate, L0, steps = 4, 8, 2, 16, 19, 3
    L = L0 + steps
    x, dt = rnd(1, L, nheads, headdim, seed=0), rnd(1, L, nheads, seed=1) * 0.5
    A = -torch.rand(nheads, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    BC = rnd(1, L, 2 * ngroups, dstate, seed=3)
    B, C = BC[:, :, :ngroups], BC[:, :, ngroups:]
    D, bias = rnd(nheads, seed=4), rnd(nheads, seed=5)
    y_full, _ = ssd_chunk_scan(x, dt, A, B, C, D, None, bias, True)
    y0, state = ssd_chunk_scan(x[:, :L0], dt[:, :L0], A, B[:, :L0], C[:, :L0], D, None, bias, True)
    ys = [selective_state_update(state, x[:, t].contiguous(), dt[:, t].contiguous(), A, B[:, t].contiguous(),
                                 C[:, t].contiguous(), D, None, bias, True) for t in range(L0, L)]
    assert rel_err(torch.cat([y0, torch.stack(ys, 1)], 1), y_full) < 1e-4
