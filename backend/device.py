"""Which device and dtype a job runs on, and the clock barrier every timing uses: one helper for the app,
the CLI, the benchmarks and training.

    resolve_device("auto") -> torch.device   auto: SSM_ARENA_DEVICE if set, else cuda when torch sees a GPU
                                             (ROCm builds report theirs as cuda), else cpu
    resolve_dtype("auto", device)           auto: bf16 on a GPU, fp32 on the CPU
    synchronize(device)                      wait for queued GPU work before reading a clock (no-op on CPU)
    device_name(device)                      "NVIDIA H100 80GB HBM3", or the CPU's model name
"""

from __future__ import annotations

import os

import torch

from backend.errors import ModelUnavailableError
from backend.runinfo import cpu_name

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


class DeviceError(ModelUnavailableError, ValueError):
    """The device asked for is unknown or not present here (a ValueError too, so argument checks catch it)."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch.device for a user's setting ("auto", "cpu", "cuda", "cuda:1"); a sentence if it cannot be had."""
    if isinstance(device, torch.device):
        device = str(device)
    want = (device or "auto").strip().lower()
    if want == "auto":
        want = (os.environ.get("SSM_ARENA_DEVICE") or "auto").strip().lower()
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            "A GPU (cuda) was asked for, but this PyTorch build sees none. Use device 'cpu' or 'auto', or "
            "install a CUDA / ROCm build of torch (README 'GPU install').")
    if want != "cpu" and not want.startswith("cuda"):
        raise DeviceError(f"Unknown device '{device}'. Use 'auto', 'cpu' or 'cuda'.")
    return torch.device(want)


def resolve_dtype(dtype: str | None, device: torch.device | str) -> torch.dtype:
    """auto: bf16 on a GPU, fp32 on the CPU; otherwise one of DTYPES' names."""
    if not dtype or dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype '{dtype}'. Use auto, bf16 (bfloat16), fp16 (float16) or fp32 (float32).")
    return DTYPES[dtype]


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait until the GPU has finished queued work (before reading a clock or a memory counter)."""
    dev = torch.device(device) if device is not None else None
    if (dev is None and torch.cuda.is_available()) or (dev is not None and dev.type == "cuda"):
        torch.cuda.synchronize(dev)


def device_name(device: torch.device | str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_name()
