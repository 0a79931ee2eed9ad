"""Probe: the Mamba-1 scan at the small grids of issue 15 (B1 D4096 L2048, B8 D1536 L4096, bf16, N 16): wall time
(do_bench: what an eager caller sees, host launch overhead included) against GPU time (do_bench_cudagraph: the
same calls replayed from a CUDA graph), and the host time of one call, per split config and for the
position-parallel kernel. One store record per case to --out (run kind "kernel_probe": load it with
`python -m backend import-results`); the last stdout line is a JSON summary.

    python scripts/scan_small_probe.py --out $OUT/scan_small_h100.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from triton.testing import do_bench, do_bench_cudagraph

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.bench.kernels import scan_activations  # noqa: E402
from backend.bench.profile import profiled_kernels  # noqa: E402
from backend.runinfo import run_meta  # noqa: E402
from kernels import selective_scan as scan  # noqa: E402
from kernels.selective_scan_par import selective_scan_par  # noqa: E402
from store import RecordWriter  # noqa: E402


def host_us(fn, n: int = 200) -> float:
    """Mean host time of one call (no synchronisation inside the loop; the queue is drained first)."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", choices=("small", "large", "all"), default="small",
                    help="small: the split grids; large: B16 D4096 / B64 D2048 seqlen-contiguous with len_tile")
    args = ap.parse_args()
    meta = run_meta()
    dev, n = "cuda", 16
    base_cfg = scan.scan_config(16, dev)
    summary = {}
    writer = RecordWriter(args.out)
    run_id = writer.start_run("kernel_probe", {"probe": "scan_small"}, meta)
    small = ((1, 4096, 2048), (8, 1536, 4096), (1, 2048, 512), (1, 1536, 2048))
    large = ((16, 4096, 2048), (64, 2048, 2048))
    shapes = {"small": small, "large": large, "all": small + large}[args.shapes]
    for sb, sd, sL in shapes:
        torch.manual_seed(0)
        A = -torch.rand(sd, n, device=dev) - 0.1
        D, bias = torch.randn(sd, device=dev), torch.randn(sd, device=dev) * 0.1
        u, dt, z, B, C = scan_activations(sb, sd, sL, n, dev)
        chan = (u, dt, A, B, C, D, z, bias, True)
        ul, dtl, zl, Bl, Cl = (t.contiguous() for t in (u, dt, z, B, C))
        lenc = (ul, dtl, A, Bl, Cl, D, zl, bias, True)
        cases = {}
        if (sb, sd, sL) in large:  # seqlen-contiguous inputs read in place (len_tile) against transpose_len's copies
            for lt in (0, 4, 8, 16):
                cfg = dataclasses.replace(base_cfg, len_tile=lt)
                cases[f"len_tile {lt} len"] = (cfg, lambda a=lenc: scan.selective_scan(*a))
            cases["default chan"] = (base_cfg, lambda a=chan: scan.selective_scan(*a))
        for mp, cm in () if (sb, sd, sL) in large else ((4224, 128), (8448, 64), (16896, 64), (16896, 32), (33792, 32)):
            cfg = dataclasses.replace(base_cfg, min_programs=mp, chunk_min=cm)
            for lay, a in (("chan", chan), ("len", lenc)):
                cases[f"split mp{mp} cm{cm} {lay}"] = (cfg, lambda a=a: scan.selective_scan(*a))
        for bl, bd, nw in () if (sb, sd, sL) in large else ((64, 16, 4), (64, 32, 8), (32, 16, 2), (128, 16, 8), (64, 8, 2)):
            cases[f"par bl{bl} bd{bd} nw{nw} len"] = (base_cfg, lambda c=(bl, bd, nw), a=lenc: selective_scan_par(
                *a, block_l=c[0], block_d=c[1], num_warps=c[2]))
        y_ref = scan.selective_scan_ref(*(t.float() if t.is_floating_point() else t for t in chan[:8]), True)[0]
        for name, (cfg, fn) in cases.items():
            scan.scan_config = lambda *a, _c=cfg, **k: _c
            y = fn()[0]
            err = ((y.float() - y_ref).abs().max() / y_ref.abs().max()).item()
            wall = do_bench(fn, warmup=25, rep=100, return_mode="median")
            gpu = do_bench_cudagraph(fn, rep=100, return_mode="median")
            rec = {"model": "selective_scan", "metric": "kernel_ms", "value": wall, "path": "triton",
                   "family": "kernel", "dtype": "bfloat16", "device": torch.cuda.get_device_name(),
                   "shape": f"B{sb} D{sd} L{sL} N{n} bf16", "case": name, "wall_ms": wall, "gpu_ms": gpu,
                   "host_us": host_us(fn), "max_rel_err": err}
            writer.add_measurements(run_id, [rec])
            print(f"{rec['shape']:<26} {name:<28} wall {wall:.4f} gpu {gpu:.4f} ms host {rec['host_us']:.0f} us "
                  f"err {err:.1e}", flush=True)
            if name.startswith(f"split mp{base_cfg.min_programs} cm{base_cfg.chunk_min} chan") or name.startswith("par bl64 bd16"):
                # where the default's GPU time goes: each kernel's device time over 20 calls (profiler)
                kernels = profiled_kernels(lambda fn=fn: [fn() for _ in range(20)])
                for kname, us, count in sorted(kernels, key=lambda k: -k[1]):
                    writer.add_measurements(run_id, [{
                        "model": "selective_scan", "metric": "kernel_us_per_call", "value": us / 20, "path": "triton",
                        "family": "kernel", "dtype": "bfloat16", "device": torch.cuda.get_device_name(),
                        "shape": rec["shape"], "case": name, "kernel": kname[:120], "launches_per_call": count / 20}])
                    print(f"    {kname[:70]:<70} {us / 20:8.1f} us/call  {count / 20:.0f} launches/call", flush=True)
            summary.setdefault(rec["shape"], {})[name] = [round(wall, 4), round(gpu, 4)]
    writer.finish_run(run_id, "completed", summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
