"""Kernel test helpers: per-dtype tolerances, NaN poisoning, and a faster interpreter scan.

TRITON_INTERPRET is set for the whole suite in tests/conftest.py (it must be set before any module imports
`kernels.*`, which a test module of another folder may do first).
"""

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# max |out - ref| / max |ref| allowed, per input dtype (the kernels compute in fp32 and round once)
REL_TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16"),
          pytest.param(torch.float16, id="fp16")]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert not torch.isnan(out).any(), "output has NaN: some element was never written (or the math broke)"
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6)).item()


@pytest.fixture
def poison(monkeypatch):
    """Make every torch.empty / torch.empty_like inside the kernels' wrappers return NaN-filled memory,
    so an output element the kernel forgets to write shows up as NaN."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def fill(t):
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: fill(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: fill(real_empty_like(*a, **k)))
    yield


def _vectorized_generic_scan(self, input):
    """Drop-in for the Triton interpreter's `ScanOps.generic_scan`, which calls the combine function once
    per *element* in Python; this calls it once per position along the scan axis on whole slices (same
    results, the combine function is elementwise). Test speed only: the kernels are unchanged."""
    import numpy as np

    datas = [a.handle.data for a in input]
    axis = self.axis
    outs = [np.empty_like(d) for d in datas]

    def take(arr, i):
        return np.take(arr, [i], axis=axis)

    def put(out, i, value):
        idx = [slice(None)] * out.ndim
        idx[axis] = slice(i, i + 1)
        out[tuple(idx)] = value

    acc = [self.to_tensor(take(d, 0), a.dtype) for d, a in zip(datas, input, strict=True)]
    for o, a in zip(outs, acc, strict=True):
        put(o, 0, a.handle.data)
    for i in range(1, datas[0].shape[axis]):
        cur = [self.to_tensor(take(d, i), a.dtype) for d, a in zip(datas, input, strict=True)]
        ret = self.combine_fn.fn(*acc, *cur)
        acc = list(ret) if isinstance(ret, tuple) else [ret]
        for o, a in zip(outs, acc, strict=True):
            put(o, i, a.handle.data)
    return [self.to_tensor(o, a.dtype) for o, a in zip(outs, input, strict=True)]


try:
    from triton.runtime import interpreter as _interp

    if hasattr(getattr(_interp, "ScanOps", None), "generic_scan"):
        _interp.ScanOps.generic_scan = _vectorized_generic_scan
except ImportError:  # pragma: no cover - other Triton layouts: the slow path still gives the same answers
    pass
