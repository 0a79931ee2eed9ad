"""Probe for kernels/selective_scan_par.py on a GPU: its launch configurations against the current
`kernels.selective_scan` at issue 15's four scan shapes (bf16, N 16), both input layouts, on the same inputs in
one run. One store record per (shape, layout, config) to --out (run kind "kernel_probe": load it with
`python -m backend import-results`); the last stdout line is a JSON summary.

    python scripts/scan_par_probe.py --out $OUT/scan_par_h100.jsonl --budget-s 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.bench.kernels import scan_activations  # noqa: E402
from backend.runinfo import run_meta  # noqa: E402
from kernels.selective_scan import selective_scan  # noqa: E402
from kernels.selective_scan_par import selective_scan_par  # noqa: E402
from store import RecordWriter  # noqa: E402

SHAPES = ((1, 4096, 2048), (8, 1536, 4096), (16, 4096, 2048), (64, 2048, 2048))


def configs(batch: int, dim: int, n: int = 16):
    """(all_states, block_l, block_d, num_warps): a (block_l, block_d) scan per state with 2..32 tile elements
    per thread, and one (block_l, n, block_d) scan of all states with 4..32, alternating; tiles of ~8 (~16)
    elements a thread first (likely neither spilling nor starved), longer tiles first among equals."""
    def grid(states, lo, hi, target, ls):
        g = [(states, bl, bd, nw) for bl, bd, nw in itertools.product(ls, (4, 8, 16, 32), (2, 4, 8))
             if lo <= bl * bd * states // (32 * nw) <= hi and batch * dim // bd >= 64]
        return sorted(g, key=lambda c: (abs(c[1] * c[2] * states // (32 * c[3]) - target), -c[1], c[2]))
    per_state, all_states = grid(1, 2, 32, 8, (32, 64, 128)), grid(n, 4, 32, 16, (8, 16, 32, 64))
    for i in range(max(len(per_state), len(all_states))):
        yield from ([per_state[i]] if i < len(per_state) else []) + ([all_states[i]] if i < len(all_states) else [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=200.0)
    ap.add_argument("--shapes", default="all", help="all, or indices into SHAPES, e.g. 0,1")
    args = ap.parse_args()
    t_start = time.time()
    dev, n = "cuda", 16
    meta = run_meta()
    best: dict = {}
    shapes = SHAPES if args.shapes == "all" else [SHAPES[int(i)] for i in args.shapes.split(",")]
    writer = RecordWriter(args.out)
    run_id = writer.start_run("kernel_probe", {"probe": "scan_par", "budget_s": args.budget_s, "shapes": args.shapes},
                              meta)
    for i, (sb, sd, sL) in enumerate(shapes):
        deadline = t_start + args.budget_s * (i + 1) / len(shapes)  # each shape its share of the budget
        torch.manual_seed(0)
        A = -torch.rand(sd, n, device=dev) - 0.1
        D, bias = torch.randn(sd, device=dev), torch.randn(sd, device=dev) * 0.1
        u, dt, z, B, C = scan_activations(sb, sd, sL, n, dev)
        for layout in ("chan", "len"):
            if layout == "len":
                u, dt, z, B, C = (t.contiguous() for t in (u, dt, z, B, C))
            a = (u, dt, A, B, C, D, z, bias, True)
            y0, h0 = selective_scan(*a)
            base = do_bench(lambda a=a: selective_scan(*a), warmup=25, rep=100, return_mode="median")
            label = f"B{sb} D{sd} L{sL} N{n} bf16" + (" len-contig" if layout == "len" else "")
            for states, bl, bd, nw in configs(sb, sd, n):
                if time.time() > deadline - (args.budget_s / len(shapes) / 2 if layout == "chan" else 0):
                    break  # the channel-contiguous layout gets the first half of the shape's share
                t0 = time.time()
                try:
                    y1, h1 = selective_scan_par(*a, block_l=bl, block_d=bd, num_warps=nw, all_states=states > 1)
                    compile_s = time.time() - t0
                    err_y = (y1.float() - y0.float()).abs().max().item()
                    err_h = (h1 - h0).abs().max().item()
                    ms = do_bench(lambda a=a, c=(bl, bd, nw, states > 1): selective_scan_par(
                        *a, block_l=c[0], block_d=c[1], num_warps=c[2], all_states=c[3]),
                                  warmup=25, rep=100, return_mode="median")
                except Exception as e:  # a config that fails to compile (resources) is recorded, not fatal
                    writer.add_measurements(run_id, [{
                        "model": "selective_scan_par", "metric": "probe_error", "value": None, "shape": label,
                        "all_states": states > 1, "block_l": bl, "block_d": bd, "num_warps": nw,
                        "error": f"{type(e).__name__}: {str(e)[:200]}"}])
                    continue
                writer.add_measurements(run_id, [{
                    "model": "selective_scan_par", "metric": "kernel_ms", "value": ms, "path": "triton",
                    "family": "kernel", "dtype": "bfloat16", "device": torch.cuda.get_device_name(),
                    "shape": label, "all_states": states > 1, "block_l": bl, "block_d": bd, "num_warps": nw,
                    "current_ms": base, "speedup_vs_current": base / ms, "max_err_y": err_y, "max_err_h": err_h,
                    "compile_s": compile_s}])
                print(f"{label:<34} {'all' if states > 1 else 'per'} bl{bl:<4} bd{bd:<3} nw{nw}  par {ms:.3f} ms  current {base:.3f} ms  "
                      f"err y {err_y:.2e} h {err_h:.2e}  compile {compile_s:.1f} s", flush=True)
                if label not in best or ms < best[label]["par_ms"]:
                    best[label] = {"par_ms": round(ms, 4), "current_ms": round(base, 4), "cfg": [states > 1, bl, bd, nw]}
    summary = {"best": best, "elapsed_s": round(time.time() - t_start, 1)}
    writer.finish_run(run_id, "completed", summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
