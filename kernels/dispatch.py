"""Pick the implementation of each SSM op for a device and report which one ran.

Paths
    "triton"     our kernels in this folder (CUDA and ROCm GPUs: `torch.cuda.is_available()`; also CPU
                 tensors when the kernels were decorated under TRITON_INTERPRET=1 and the path is forced,
                 which is how CI tests them)
    "cpu-chunked" the CPU fast path (CPU tensors under auto): Mamba-1 prefill through the compiled scan of
                 `kernels/cpu_scan.py`, Mamba-2 prefill through the compiled recurrence of `kernels/cpu_ssd_scan.py`
                 (~4x the chunked SSD of `kernels/cpu_ssd.py` at the toy shape, which stays as a reference), the
                 decode step's state and conv updates fused (`kernels/cpu_step.py`; the whole step between in_proj
                 and out_proj is one call, `kernels/cpu_mamba1_step.py` / `cpu_mamba2_step.py`), the conv and the norm
                 in one compiled pass each (`cpu_conv.py`, `cpu_norm.py`); needs numba, else "reference"
    "reference"  the `*_ref` PyTorch functions beside each kernel (forced, or CPU without numba)
    "mamba-ssm"  state-spaces/mamba's Triton decode update and Mamba-2 chunk scan when the package
                 imports (its CUDA extension is not needed); the ops it lacks without its CUDA build
                 (Mamba-1 prefill scan, conv) still run ours. Only when asked for: it is a peer to
                 measure against, not a dependency.

Choose with the environment variable SSM_ARENA_KERNELS = auto (default) | triton | cpu-chunked | reference |
mamba-ssm.
Block sizes and num_warps per vendor live in `kernels/launch.py`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import torch
import triton

from kernels import causal_conv1d as _conv
from kernels import rms_norm as _norm
from kernels import selective_scan as _scan
from kernels import selective_state_update as _ssu
from kernels import ssd_chunk_scan as _ssd
from kernels.launch import target_of

ENV = "SSM_ARENA_KERNELS"
PATHS = ("triton", "cpu-chunked", "reference", "mamba-ssm")

_OPS = {
    "triton": {
        "selective_scan": _scan.selective_scan,
        "selective_state_update": _ssu.selective_state_update,
        "ssd_chunk_scan": _ssd.ssd_chunk_scan,
        "causal_conv1d": _conv.causal_conv1d,
        "causal_conv1d_update": _conv.causal_conv1d_update,
        "rms_norm": _norm.rms_norm,
    },
    "reference": {
        "selective_scan": _scan.selective_scan_ref,
        "selective_state_update": _ssu.selective_state_update_ref,
        "ssd_chunk_scan": _ssd.ssd_chunk_scan_ref,
        "causal_conv1d": _conv.causal_conv1d_ref,
        "causal_conv1d_update": _conv.causal_conv1d_update_ref,
        "rms_norm": _norm.rms_norm_ref,
    },
}
# The CPU fast path needs numba (a pinned requirement); without it CPU tensors take the references.
_cpu_available = importlib.util.find_spec("numba") is not None


def _cpu_ops() -> dict:
    """The "cpu-chunked" table, imported on first use: numba and the compiled ops take ~1-2 s to import, which
    processes that never run an SSM on a CPU (GPU runs, a transformer's benchmark child, the UI) should not pay."""
    global _cpu_available
    if "cpu-chunked" not in _OPS:
        try:
            from kernels import (
                cpu_conv,
                cpu_mamba1_step,
                cpu_mamba2_step,
                cpu_norm,
                cpu_prefill,
                cpu_scan,
                cpu_ssd_scan,
                cpu_step,
            )
        except ImportError:  # numba present but broken on this platform: the references
            _cpu_available = False
            return _OPS["reference"]
        _OPS["cpu-chunked"] = {**_OPS["reference"], "selective_scan": cpu_scan.selective_scan_cpu,
                               "ssd_chunk_scan": cpu_ssd_scan.ssd_scan_cpu,
                               "selective_state_update": cpu_step.selective_state_update_cpu,
                               "causal_conv1d_update": cpu_step.causal_conv1d_update_cpu,
                               "causal_conv1d": cpu_conv.causal_conv1d_cpu, "rms_norm": cpu_norm.rms_norm_cpu,
                               "mamba1_step": cpu_mamba1_step.mamba1_step_cpu,
                               "mamba2_step": cpu_mamba2_step.mamba2_step_cpu,
                               # a decode loop's layer, bound once per sequence (backend/generation/cpu_decode.py)
                               "mamba1_step_bind": cpu_mamba1_step.bind_mamba1_step,
                               "mamba2_step_bind": cpu_mamba2_step.bind_mamba2_step,
                               "residual_norm_bind": cpu_norm.bind_residual_norm,
                               # a prefill's layers, bound once per model (backend/generation/cpu_prefill.py)
                               "mamba1_prefill_bind": cpu_prefill.bind_mamba1_prefill,
                               "mamba2_prefill_bind": cpu_prefill.bind_mamba2_prefill,
                               "block_norm_bind": cpu_prefill.bind_block_norm}
    return _OPS["cpu-chunked"]


def requested() -> str:
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", *PATHS):
        raise ValueError(f"{ENV} must be one of auto, {', '.join(PATHS)}; got {value!r}. Unset it to choose automatically.")
    return value


def _interpreting() -> bool:
    """Whether our kernels run under the Triton interpreter (which takes CPU tensors). Triton decides that
    when a kernel is decorated, i.e. from TRITON_INTERPRET at the time `kernels.*` was imported; setting the
    variable later does not turn compiled kernels into interpreted ones (on a GPU machine that used to send
    CPU tensors into compiled kernels)."""
    return type(_conv._causal_conv1d_kernel).__name__ == "InterpretedFunction"


def mamba_ssm_ops() -> dict | None:
    """mamba-ssm's Triton ops wrapped to our signatures, or None when the package does not import."""
    try:
        if "selective_scan_cuda" not in sys.modules:
            try:
                import selective_scan_cuda  # noqa: F401
            except ImportError:  # its CUDA build is optional for the Triton ops we use
                sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update as m_ssu
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as m_ssd
    except Exception:
        return None

    def ssu(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
        if A.dim() == 1:  # tied Mamba-2 form -> mamba-ssm's expanded (stride-0) form
            nh, hd, ds = state.shape[1], state.shape[2], state.shape[3]
            A = A[:, None, None].expand(nh, hd, ds)
            dt = dt[:, :, None].expand(-1, -1, hd)
            D = None if D is None else D[:, None].expand(nh, hd)
            dt_bias = None if dt_bias is None else dt_bias[:, None].expand(nh, hd)
        return m_ssu(state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)

    def ssd(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
            initial_states=None, chunk_size=256):
        return m_ssd(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states,
                     dt_softplus=dt_softplus, dt_limit=dt_limit, return_final_states=True)

    return {**_OPS["triton"], "selective_state_update": ssu, "ssd_chunk_scan": ssd}


def path_for(device) -> str:
    """The path ops on tensors of `device` take now."""
    dev = torch.device(device)
    want = requested()
    on_gpu = dev.type == "cuda" and torch.cuda.is_available()
    if want == "reference":
        return "reference"
    if want == "mamba-ssm":
        if not on_gpu or mamba_ssm_ops() is None:
            raise RuntimeError(f"{ENV}=mamba-ssm needs a GPU and an importable mamba-ssm package. "
                               "Install mamba-ssm or unset the variable.")
        return "mamba-ssm"
    if want == "triton":
        if on_gpu or (dev.type == "cpu" and _interpreting()):
            return "triton"
        raise RuntimeError(f"{ENV}=triton needs a CUDA/ROCm GPU (or, for CPU tensors, TRITON_INTERPRET=1 set "
                           "before `kernels` is imported). Unset the variable to use the PyTorch reference.")
    if want == "cpu-chunked":
        if dev.type == "cpu" and _cpu_available:
            return "cpu-chunked"
        raise RuntimeError(f"{ENV}=cpu-chunked runs on CPU tensors only and needs numba (pip install numba). "
                           "Unset the variable to choose automatically.")
    if on_gpu:
        return "triton"
    return "cpu-chunked" if dev.type == "cpu" and _cpu_available else "reference"


def op(name: str, device):
    """The function implementing op `name` on `device`."""
    path = path_for(device)
    table = mamba_ssm_ops() if path == "mamba-ssm" else _cpu_ops() if path == "cpu-chunked" else _OPS[path]
    return table[name]


def fused(name: str, device):
    """An op only some paths have (the CPU path's fused decode steps, "mamba1_step" and "mamba2_step", and their
    bound forms for a decode loop, "mamba1_step_bind", "mamba2_step_bind", "residual_norm_bind", and for a prefill,
    "mamba1_prefill_bind", "mamba2_prefill_bind", "block_norm_bind"), or None: the
    caller then runs the same math as separate ops."""
    path = path_for(device)
    table = mamba_ssm_ops() if path == "mamba-ssm" else _cpu_ops() if path == "cpu-chunked" else _OPS[path]
    return table.get(name)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None):
    return op("selective_scan", u.device)(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    return op("selective_state_update", state.device)(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)


def ssd_chunk_scan(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                   initial_states=None):
    return op("ssd_chunk_scan", x.device)(x, dt, A, B, C, D, z, dt_bias, dt_softplus, dt_limit, initial_states)


def causal_conv1d(x, weight, bias=None, activation=None):
    return op("causal_conv1d", x.device)(x, weight, bias, activation)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None):
    return op("causal_conv1d_update", x.device)(x, conv_state, weight, bias, activation)


def rms_norm(x, weight, eps, residual=None, z=None, group_size=None, residual_fp32=True, round_input=False):
    return op("rms_norm", x.device)(x, weight, eps, residual, z, group_size, residual_fp32, round_input)


def uses_triton(device) -> bool:
    """Whether ops on `device` run our Triton kernels (or mamba-ssm's): the training ops ask this, since
    only the Triton path has a fused training scan (the CPU paths train through the references)."""
    return path_for(device) in ("triton", "mamba-ssm")


def describe(device) -> dict:
    """What would run on `device`: path, vendor target, triton version (for run records and the UI)."""
    info = {"path": path_for(device), "target": target_of(device), "triton": triton.__version__,
            "requested": requested()}
    if info["path"] == "cpu-chunked":
        info["cpu_threads"] = torch.get_num_threads()  # what kernels/cpu_*.py run with
    return info
