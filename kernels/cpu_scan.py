"""Mamba-1 prefill scan on CPU: the selective scan as one compiled, vectorised loop (numba), returning y and
the final fp32 state. The CPU counterpart of `kernels/selective_scan.py` (same signature and results).

Shape glossary
    batch   sequences
    dim     channels (d_inner)
    seqlen  positions L
    dstate  state size N

Arguments (mamba-ssm `selective_scan_fn` layout, any strides; what `selective_scan` takes)
    u, delta    [batch, dim, seqlen]   fp32/bf16/fp16 (computed in fp32)
    A           [dim, dstate]          fp32 (negative reals)
    B, C        [batch, dstate, seqlen]
    D [dim] fp32 or None;  z [batch, dim, seqlen] or None;  delta_bias [dim] fp32 or None
    initial_state [batch, dim, dstate] fp32 or None
Returns y [batch, dim, seqlen] in u's dtype (memory order [batch, seqlen, dim], like the Triton op) and
last_state [batch, dim, dstate] fp32.

    dt_t = softplus(delta_t + delta_bias)
    h_t  = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t;    y_t = <h_t, C_t> + D * u_t;   y_t *= silu(z_t)

Why a compiled loop and not vectorised PyTorch: the scan needs one exponential per (channel, position,
state), and every PyTorch formulation (a chunked scan through cumsum with exp(-cumsum) factors, or the
associative scan) makes ~8 passes over a [dim, seqlen, dstate] tensor. Measured on the 2-core CPU for one
toy-mamba layer (dim 512, N 16, 512 positions, one thread): the chunked PyTorch scan took ~100 ms, this
loop ~3 ms, the reference 235 ms. numba (a well-kept JIT) compiles the loop once per process (cached on
disk), with no C compiler needed on the user's machine.

Why our own exp2: numba's LLVM has no vector math library (`numba -s`: SVML not available), so `math.exp`
is a scalar libm call per element (~3x slower here). `_exp2` below is the usual range reduction
(2^t = 2^k * 2^f, |f| <= 1/2) with a degree-5 polynomial (max relative error 7.5e-8, below fp32's
epsilon), all in plain arithmetic and bit shifts that LLVM vectorises.

Design: one job (the unit of `prange`) owns BLOCK_D = 16 channels of one sequence. Positions go in tiles
of `tile_l`; per tile, a prologue stores dt and dt * u for the tile, then for each pair of states n, n+1
the tile is walked one position at a time with the two 16-channel state vectors in registers (two
independent chains hide the multiply-add latency), adding h * C into a [tile_l, 16] accumulator; an
epilogue adds D * u and the gate. Nothing of size [dim, seqlen, dstate] is formed. The bias and softplus
of delta are fused into the prologue (`_softplus`: PyTorch's took ~0.3 ms a toy layer, a third of the scan). dim is padded to a
multiple of 16 and N to an even number only when they are not (the tests' odd shapes; model sizes need no
copy).

The prologue's softplus and the epilogue's gate run as flat loops over the tile's [tile_l * 16] buffers,
with only 16-channel row copies in and out. Written as [t, 16] loops, LLVM unrolled the 16 channels and
vectorised over positions instead, with gathers and scatters at a stride of dim (seen in the asm): on one
toy layer (dim 512, N 16, 512 positions) the two cost ~1 ms of a 2.8 ms scan on one thread; flat, the
scan takes 1.8 ms (0.9 against 1.4 ms on two threads), the same states bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from kernels.selective_scan import _check, selective_scan_ref

BLOCK_D = 16  # channels per job: one AVX-512 vector (two AVX2 vectors)
TILE_L = 128  # positions per tile: the tile's dt, dt*u and y accumulators stay in L1/L2
# fast-math without reassociation: contractions into FMAs and no NaN/inf/signed-zero care, but the
# compiler may not reorder sums (the round-to-nearest trick in _exp2 depends on it)
FASTMATH = {"nsz", "arcp", "contract", "afn", "nnan", "ninf"}
# every CPU kernel compiles with these. error_model="numpy": numba's default ("python") tests each float
# division for zero to raise ZeroDivisionError, and that branch keeps LLVM from vectorising any loop with a
# division in it (the SiLU gates, softplus, the norms' 1/rms): a toy conv layer's fused SiLU took 0.61 ms with
# it and 0.07 ms without it (512 x 512, one thread). x / 0 then gives inf, as in PyTorch.
JIT = dict(fastmath=FASTMATH, boundscheck=False, nogil=True, error_model="numpy")
LOG2E = 1.4426950408889634
selective_scan_cpu_ref = selective_scan_ref  # the reference this op is tested against


@intrinsic
def _f2i(typingctx, x):
    """float32 -> its int32 bit pattern (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _i2f(typingctx, x):
    """int32 bit pattern -> float32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always", **JIT)
def _exp2(t):
    """2**t in fp32 for |t| <= 125 (clamped), vectorisable (see the module docstring)."""
    t = min(max(t, np.float32(-125.0)), np.float32(125.0))
    j = t + np.float32(12582912.0)  # 1.5 * 2**23: the low bits of j are round(t)
    k = _f2i(j) - np.int32(0x4B400000)
    f = t - (j - np.float32(12582912.0))  # in [-1/2, 1/2]
    p = np.float32(1.3276471e-3)
    p = p * f + np.float32(9.6755410e-3)
    p = p * f + np.float32(5.5507131e-2)
    p = p * f + np.float32(2.4022120e-1)
    p = p * f + np.float32(6.9314694e-1)
    p = p * f + np.float32(1.0000001)
    return _i2f(_f2i(p) + (k << np.int32(23)))


@njit(inline="always", **JIT)
def _softplus(x):
    """log(1 + e^x) in fp32, vectorisable: max(x, 0) + log1p(e^-|x|), the log1p as 2 atanh(s) with
    s = e / (2 + e) <= 1/3 (odd series to s^13: relative error < 1e-8). Matches F.softplus (threshold 20)."""
    e = _exp2(-abs(x) * np.float32(LOG2E))
    s = e / (np.float32(2.0) + e)
    s2 = s * s
    p = np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return max(x, np.float32(0.0)) + np.float32(2.0) * s * p


@njit(parallel=True, cache=True, **JIT)
def _scan_kernel(u, dt, bias, softplus, At, Bm, Cm, Dv, z, zc, has_z, h, y, tile_l):
    """u, dt, y [b, L, d] (dt before the bias and softplus, both fused here); z [b, L, >= zc + d], its
    channels from column zc (`in_parent`); bias [d];
    At [N, d] = A * log2(e); Bm, Cm [b, L, N]; Dv [d]; h [b, N, d] in: initial state, out: final state.
    d % 16 == 0, N even; all fp32, C-contiguous."""
    b, L, d = u.shape
    N = At.shape[0]
    nblk = d // BLOCK_D
    for job in prange(b * nblk):
        bi = job // nblk
        d0 = (job % nblk) * BLOCK_D
        dtb = np.empty((tile_l, BLOCK_D), np.float32)
        dub = np.empty((tile_l, BLOCK_D), np.float32)
        acc = np.empty((tile_l, BLOCK_D), np.float32)
        zb = np.empty((tile_l, BLOCK_D), np.float32)
        dtf = dtb.reshape(tile_l * BLOCK_D)  # flat views: the element-wise math runs as one unit-stride loop
        duf = dub.reshape(tile_l * BLOCK_D)
        accf = acc.reshape(tile_l * BLOCK_D)
        zf = zb.reshape(tile_l * BLOCK_D)
        h1 = np.empty(BLOCK_D, np.float32)
        h2 = np.empty(BLOCK_D, np.float32)
        a1 = np.empty(BLOCK_D, np.float32)
        a2 = np.empty(BLOCK_D, np.float32)
        for t0 in range(0, L, tile_l):
            tl = min(tile_l, L - t0)
            m = tl * BLOCK_D
            for t in range(tl):  # gather the tile: 16-channel row copies
                dtrow = dt[bi, t0 + t]
                urow = u[bi, t0 + t]
                for j in range(BLOCK_D):
                    dtb[t, j] = dtrow[d0 + j] + bias[d0 + j]
                    dub[t, j] = urow[d0 + j]
            if softplus:
                for k in range(m):
                    dtf[k] = _softplus(dtf[k])
            for k in range(m):
                duf[k] = dtf[k] * duf[k]
                accf[k] = 0.0
            for n in range(0, N, 2):
                for j in range(BLOCK_D):
                    h1[j] = h[bi, n, d0 + j]
                    h2[j] = h[bi, n + 1, d0 + j]
                    a1[j] = At[n, d0 + j]
                    a2[j] = At[n + 1, d0 + j]
                for t in range(tl):
                    b1 = Bm[bi, t0 + t, n]
                    b2 = Bm[bi, t0 + t, n + 1]
                    c1 = Cm[bi, t0 + t, n]
                    c2 = Cm[bi, t0 + t, n + 1]
                    for j in range(BLOCK_D):
                        dv = dtb[t, j]
                        du = dub[t, j]
                        v1 = _exp2(dv * a1[j]) * h1[j] + du * b1
                        v2 = _exp2(dv * a2[j]) * h2[j] + du * b2
                        h1[j] = v1
                        h2[j] = v2
                        acc[t, j] += v1 * c1 + v2 * c2
                for j in range(BLOCK_D):
                    h[bi, n, d0 + j] = h1[j]
                    h[bi, n + 1, d0 + j] = h2[j]
            for t in range(tl):  # u * D into dub (free now), z into zb: row copies
                urow = u[bi, t0 + t]
                for j in range(BLOCK_D):
                    dub[t, j] = urow[d0 + j] * Dv[d0 + j]
                if has_z:
                    zrow = z[bi, t0 + t]
                    for j in range(BLOCK_D):
                        zb[t, j] = zrow[zc + d0 + j]
            if has_z:
                for k in range(m):
                    zv = zf[k]
                    accf[k] = (accf[k] + duf[k]) * zv / (np.float32(1.0) + _exp2(-zv * np.float32(LOG2E)))
            else:
                for k in range(m):
                    accf[k] = accf[k] + duf[k]
            for t in range(tl):
                yrow = y[bi, t0 + t]
                for j in range(BLOCK_D):
                    yrow[d0 + j] = acc[t, j]


def threads() -> int:
    """numba's thread count follows torch's (`torch.set_num_threads`), within numba's pool."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def in_parent(t: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """t [b, L, d] fp32 whose rows are contiguous with a stride W >= d (a slice of a wider [b, L, W] tensor,
    e.g. in_proj's output) -> (a C-contiguous [b, L, W] view over the same memory, the column where t
    starts), or None. The kernels then read t in place: copying such a slice cost ~1 ms a toy layer inside a
    prefill (a fresh 1 MB buffer each time), a tenth of the layer."""
    b, L, d = t.shape
    W = t.stride(1)
    if t.dtype != torch.float32 or t.stride(2) != 1 or W < d or t.stride(0) != L * W or b * L * d == 0:
        return None
    off = t.storage_offset()
    col = min(off, W - d)  # any col keeps t's elements where they are; this one keeps the view in storage
    if off - col + b * L * W > t.untyped_storage().nbytes() // t.element_size():
        return None
    return t.as_strided((b, L, W), (L * W, W, 1), off - col), col


def _position_major(t: torch.Tensor, pad: int) -> torch.Tensor:
    """[batch, C, L] (any strides) -> [batch, L, C + pad] fp32 C-contiguous (a view when it already is)."""
    pm = t.transpose(1, 2).float()
    if pad:
        pm = F.pad(pm, (0, pad))
    return pm.contiguous()


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None,
                       tile_l: int = TILE_L):
    """CPU selective scan; see the module docstring. Returns (y, last_state fp32)."""
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    assert u.device.type == "cpu", f"selective_scan_cpu takes CPU tensors, got {u.device}"
    assert tile_l >= 1, "tile_l must be positive"
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    pd, pn = (-dim) % BLOCK_D, dstate % 2  # pad to whole 16-channel blocks and an even state count
    dt = _position_major(delta, pd)  # [batch, L, dim]; the bias and softplus are applied in the kernel
    bias = F.pad(delta_bias.float(), (0, pd)) if delta_bias is not None else torch.zeros(dim + pd)
    uu = _position_major(u, pd)
    parent = in_parent(z.transpose(1, 2)) if z is not None and not pd else None
    zz, zc = parent if parent is not None else (_position_major(z, pd) if z is not None else uu, 0)
    At = F.pad(A.float() * LOG2E, (0, pn, 0, pd)).t().contiguous()  # [N, dim]; padded states: A = 0, B = C = 0
    Bm, Cm = _position_major(B, pn), _position_major(C, pn)
    Dv = F.pad(D.float(), (0, pd)) if D is not None else torch.zeros(dim + pd)
    h = torch.zeros(batch, dstate + pn, dim + pd, dtype=torch.float32)
    if initial_state is not None:
        h[:, :dstate, :dim] = initial_state.float().transpose(1, 2)
    y = torch.empty(batch, seqlen, dim + pd, dtype=torch.float32)
    if seqlen:
        numba.set_num_threads(threads())
        _scan_kernel(uu.numpy(), dt.numpy(), bias.contiguous().numpy(), bool(delta_softplus), At.numpy(), Bm.numpy(),
                     Cm.numpy(), Dv.contiguous().numpy(), zz.detach().numpy(), zc, z is not None, h.numpy(), y.numpy(),
                     int(tile_l))
    y = y[:, :, :dim] if pd else y
    out = y.to(u.dtype).transpose(1, 2)  # [batch, dim, L] view of [batch, L, dim] memory
    return out, h[:, :dstate, :dim].transpose(1, 2).contiguous()
