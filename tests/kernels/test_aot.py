"""Every kernel compiles ahead of time, at the dispatcher's configurations, for AMD (gfx90a, gfx942) and
NVIDIA (sm_80, sm_90), with no spill to memory. Needs no GPU (about a minute on 2 cores).

Runs in a fresh process: this test session sets TRITON_INTERPRET=1, under which `@triton.jit` gives
interpreter objects that cannot be compiled."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_all_kernels_compile_for_amd_and_nvidia_without_spills(tmp_path):
    out = tmp_path / "aot.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "backend", "kernel-aot", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stdout + proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    from kernels import aot

    assert len(records) == len(aot.specs()) * len(aot.TARGETS)
    failed = [f"{r['op']} [{r['variant']}] {r['target']}: {r['error']}" for r in records if not r["ok"]]
    assert not failed, "compile errors:\n" + "\n".join(failed)
    spilled = [f"{r['op']} [{r['variant']}] {r['target']}: {r['spills']}" for r in records if r["spills"]]
    assert not spilled, "register spills:\n" + "\n".join(spilled)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "selective_scan" in proc.stdout and "hip:gfx942" in proc.stdout  # the printed table
    for r in records:
        if r["backend"] == "hip":
            assert r["vgpr"] and r["occupancy"], r
        else:
            assert r["registers"], r
    # the scan's loops (one position per warp) on sm_90 stay in registers: no barrier, shuffle or shared-memory
    # round trip. With the launcher's knowledge that dim % 16 == 0 it had 15 barriers, 24 shuffles and 51 shared
    # loads/stores per position (issue 15: `dim` is exempt from that specialisation in the kernel); the split
    # scan's pass 3 had 6 barriers while it loaded its start state states-contiguous (now channels-contiguous)
    for variant in ("mamba-130m bf16 N=16", "chunk pass 3 (rescan from the true start, final state)"):
        scan = next(r for r in records if r["variant"] == variant and r["target"] == "cuda:90")
        ops = json.loads(scan["loop_ops"])
        assert scan["loop_instrs"] > 100 and ops.get("MUFU", 0) >= 16, scan  # the loop was found: 16 exp2 at N = 16
        assert not {op: n for op, n in ops.items() if op in ("BAR", "SHFL", "LDS", "STS")}, (variant, ops)
