"""Launch configurations (block sizes, num_warps) per kernel and per GPU vendor.

One place that both the runtime wrappers and `kernels/aot.py` read, so the ahead-of-time compile table
shows exactly the configurations that run. `target` is "cuda" (NVIDIA), "hip" (AMD ROCm) or "cpu"
(Triton interpreter, which takes the CUDA numbers).

Where AMD differs:
- a wavefront is 64 lanes, not 32: `num_warps` counts wavefronts there, so the same tile spread over
  half as many "warps" keeps the elements-per-lane of the NVIDIA config;
- LDS is 64 KiB per CU on MI200/MI300 (H100: up to 228 KiB shared memory per SM), so tiles that stage
  through shared memory (the SSD chunk's tl.dot operands) are kept smaller there;
- Triton's AMD backend warns above 16 wavefronts per block; we never ask for more than 8.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import triton


@dataclass(frozen=True)
class LaunchConfig:
    num_warps: int
    block_m: int = 0  # rows of channels (state update) / chunk length (SSD)
    block_n: int = 0  # padded state size
    block_d: int = 0  # channels per program (scan, conv)
    block_l: int = 0  # sequence positions per step (scan, conv)
    block_p: int = 0  # head-dim slice per program (SSD)
    min_programs: int = 0  # scan: when it splits the sequence, into enough chunks for this many programs
    split_below: int = 0  # scan: split only when batch x channel blocks are fewer than this (0: min_programs)
    chunk_min: int = 0  # scan: shortest chunk worth a separate program
    prefetch: int = 0  # scan: issue the loads of the position this many steps ahead before this one's arithmetic
    poly: int = 0  # scan: exp2 of a quarter (1) or half (2) of the states on the FMA pipes (`_exp2_poly`)
    bc_fp32: bool = False  # scan: copy B and C once to fp32, states contiguous (unsplit scans, or seqlen-contiguous B/C)
    bc_fp32_split: bool = False  # scan: with bc_fp32, copy them for split scans too (measured slower before 9d0cd55)
    transpose_len: bool = False  # scan: copy seqlen-contiguous u, delta, z to channels-contiguous first
    # scan: (block_l, block_d, num_warps) of kernels/selective_scan_par.py, taken instead of a split scan when
    # u is seqlen-contiguous; () never
    par_len: tuple = ()
    # scan: positions per (BLOCK_D, P) tile of kernels/selective_scan_len.py, which reads seqlen-contiguous inputs
    # in place on grids that are not split (instead of transpose_len's copies); 0 never
    len_tile: int = 0


def target_of(device) -> str:
    """'cuda', 'hip' or 'cpu' for a torch device (ROCm builds of torch report device type 'cuda')."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return "cpu"
    return "hip" if getattr(torch.version, "hip", None) else "cuda"


def _t(device_or_target) -> str:
    """Vendor of a torch device or of a target string ("cuda", "hip", "cpu", "cuda:90", "hip:gfx942")."""
    if isinstance(device_or_target, str) and device_or_target.split(":")[0] in ("cuda", "hip", "cpu"):
        if device_or_target.startswith("cuda:") and device_or_target[5:].isdigit() and len(device_or_target) <= 7 \
                and int(device_or_target[5:]) < 10:  # "cuda:0" is a torch device, not an arch
            return target_of(device_or_target)
        return device_or_target.split(":")[0]
    return target_of(device_or_target)


@functools.lru_cache(maxsize=16)
def _cuda_arch(index: int) -> int:
    import torch

    major, minor = torch.cuda.get_device_capability(index)
    return 10 * major + minor


def _arch(device_or_target) -> int | str | None:
    """NVIDIA compute capability as 80 / 90, AMD gfx name, or None (CPU / unknown)."""
    if isinstance(device_or_target, str) and ":" in device_or_target:
        vendor, arch = device_or_target.split(":", 1)
        if vendor == "hip" or (vendor == "cuda" and arch.isdigit() and int(arch) >= 10):
            return int(arch) if arch.isdigit() else arch
    if isinstance(device_or_target, str) and device_or_target in ("cuda", "hip", "cpu"):
        return None  # a vendor without an arch: the generic config
    if _t(device_or_target) == "cuda":
        import torch

        dev = torch.device(device_or_target)
        return _cuda_arch(dev.index if dev.index is not None else torch.cuda.current_device())
    return None


def ssu_config(dstate: int, dim: int, tied: bool, device) -> LaunchConfig:
    """Decode state update: a (BLOCK_M, dstate) tile of state per program, hand-tuned (no autotune:
    the kernel writes the state in place). Rows follow mamba-ssm's defaults; for dstate 128 we take
    vLLM's tuned H100 choice (4 rows, 1 warp)."""
    n = max(16, triton.next_power_of_2(dstate))
    if n <= 16:
        m, w = 32, 4
    elif n <= 32:
        m, w = 16, 4
    elif n <= 64:
        m, w = 8, 4
    elif n <= 128:
        m, w = 4, 1
    else:
        m, w = 4, 4
    m = min(m, max(4, triton.next_power_of_2(dim)))
    if _t(device) == "hip":
        w = max(1, w // 2)  # 64-lane wavefronts
    return LaunchConfig(num_warps=w, block_m=m, block_n=n)


def scan_config(dstate: int, device, batch: int | None = None, dim: int | None = None) -> LaunchConfig:
    """Mamba-1 prefill scan: BLOCK_D channels per program, one channel per thread (lanes x warps cover
    BLOCK_D), its N states in that thread's registers; walked one position at a time.
    Below split_below programs (batch x channel blocks) the sequence is split into chunks of at least
    chunk_min positions, enough for min_programs programs; a split costs a second pass over the sequence
    (see `selective_scan`), so it only pays where the unsplit grid leaves the GPU idle.
    H100, bf16, N 16 (results/kernels_h100_5.jsonl and _6, one run each): unsplit took 1.45 ms at B16 D4096
    L2048 against 2.43 ms split (mamba-ssm's CUDA forward: 2.31 ms) and 2.94 ms at B64 D2048 L2048 against
    4.89 ms split (mamba-ssm: 4.61 ms), while at B8 D1536 L4096 and B1 D4096 L2048 splitting was 2.4x and 4-5x
    faster than not. 2-warp programs of 64 channels were as fast as or faster than 4-warp ones of 128 at every
    shape (B64: 2.86 against 2.94 ms; B1: 0.22 against 0.32 ms), 1-warp ones of 32 no faster.
    bc_fp32 copies B and C to fp32 once (40 of the loop's 232 sm_90 instructions per position were bf16
    unpacking): faster unsplit (B16: 1.45 against 1.53 ms) but slower split (B8: 1.00 against 0.93 ms; run 8,
    after pass 3 stopped converting layouts: 0.98 against 0.91), so the wrapper applies it only where the scan
    is not split or B and C come seqlen-contiguous (their transpose).
    Run 8's sweep (results/kernels_h100_8.jsonl.gz): chunks of >= 64 positions for 8,448 programs beat >= 128
    for 4,224 at both split shapes (B8 D1536 L4096 0.870 against 0.909 ms, B1 D4096 L2048 0.187 against 0.210).
    transpose_len copies seqlen-contiguous u, delta, z to channels-contiguous first (kernels/channels_last.py).
    par_len: seqlen-contiguous inputs on a grid that would split go to kernels/selective_scan_par.py instead
    (probe, results/scan_par_h100_1.jsonl.gz: B1 D4096 0.179 against 0.312 ms, B8 D1536 1.067 against 1.198).
    len_tile: seqlen-contiguous inputs on an unsplit grid are read in place by kernels/selective_scan_len.py in
    tiles of 4 positions (probe, results/scan_small_h100_1.jsonl.gz, a40dd1b: B16 D4096 L2048 1.70 ms and B64
    D2048 L2048 2.94 ms against 2.04 and 4.05 with transpose_len's copies; tiles of 8: 1.64 and 3.52, of 16:
    2.14 and 4.59; mamba-ssm's CUDA forward in the same call: 2.30 and 4.59 ms).
    batch and dim are accepted for per-shape rules; none is needed today."""
    n = max(16, triton.next_power_of_2(dstate))
    t = _t(device)
    if t == "cpu":  # interpreter: a tiny min_programs so that the tests cover the chunked path
        return LaunchConfig(num_warps=4, block_d=32, block_n=n, min_programs=8, chunk_min=8)
    if t == "hip":  # a wavefront is 64 lanes: 2 wavefronts cover 128 channels (not measured on AMD yet)
        return LaunchConfig(num_warps=2, block_d=128, block_n=n, min_programs=1024, chunk_min=128, prefetch=1)
    return LaunchConfig(num_warps=2, block_d=64, block_n=n, min_programs=SPLIT_PROGRAMS, split_below=528,
                        chunk_min=64, prefetch=1, bc_fp32=True, transpose_len=True, par_len=(64, 16, 4), len_tile=4)


SPLIT_PROGRAMS = 8448  # 64 2-warp programs per SM of an H100/H200 (132 SMs); 528 (split_below) is 4 per SM


def ssd_config(headdim: int, dstate: int, device) -> LaunchConfig:
    """Mamba-2 chunked scan: one program owns a (BLOCK_P, N) slice of one head's state and walks the
    chunks of length BLOCK_M in order. The N-long contractions (C @ S^T, C @ B^T) keep (chunk x N)
    dot operands in registers in every warp, so for N = 128 the tiles stay small: larger ones spill
    (see `python -m backend kernel-aot`)."""
    n = max(16, triton.next_power_of_2(dstate))
    p = 16
    t = _t(device)
    if t == "cpu":
        return LaunchConfig(num_warps=4, block_m=16, block_n=n, block_p=max(16, min(32, triton.next_power_of_2(headdim))))
    if t == "hip":
        # 64-lane wavefronts hold the replicated N-long operands in VGPRs: 16-long chunks avoid spills
        return LaunchConfig(num_warps=4, block_m=16 if n >= 128 else 32, block_n=n, block_p=p)
    arch = _arch(device)
    if n >= 128 and isinstance(arch, int) and arch >= 90:
        # sm_90's 64K registers hold a 32-wide head-dim slice without spilling (sm_80 spills); ~1.7x faster
        # than 16 in the H100 sweep (results/kernels_h100.jsonl.gz)
        return LaunchConfig(num_warps=4, block_m=32, block_n=n, block_p=32)
    return LaunchConfig(num_warps=4, block_m=32 if n >= 128 else 64, block_n=n, block_p=p)


def conv_config(device) -> LaunchConfig:
    """Depthwise causal conv: (BLOCK_L, BLOCK_D) tiles, channels contiguous."""
    t = _t(device)
    if t == "cpu":
        return LaunchConfig(num_warps=4, block_d=64, block_l=32)
    if t == "hip":
        return LaunchConfig(num_warps=4, block_d=128, block_l=32)
    return LaunchConfig(num_warps=4, block_d=128, block_l=32)


def conv_update_config(device) -> LaunchConfig:
    t = _t(device)
    return LaunchConfig(num_warps=2 if t == "hip" else 4, block_d=256 if t != "cpu" else 64)
