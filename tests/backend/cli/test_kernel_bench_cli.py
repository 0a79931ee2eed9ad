"""The GPU benchmark commands run end to end on tiny shapes on CPU (`--smoke`): a typo in them must not
cost a GPU call. Fresh processes, so that kernel-bench's Triton calls run under the interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(args, tmp_path, interpret: bool):
    # The GPU is hidden from the child: these are the CPU smoke checks (the commands pick CUDA whenever
    # torch sees it, and then record the GPU's name and paths, which failed both tests on an H100).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "USE_HUB_KERNELS": "0", "SSM_ARENA_DATA": str(tmp_path),
           "CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "-1"}
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_kernel_bench_smoke(tmp_path):
    out = tmp_path / "k.jsonl"
    # --previous-scan given our own file: the "previous" baseline is timed and agrees with ours
    stdout = run(["kernel-bench", "--smoke", "--out", str(out), "--previous-scan",
                  str(ROOT / "kernels" / "selective_scan.py")], tmp_path, interpret=True)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["device"] == "cpu (smoke)"
    recs = records(out)
    assert recs[0]["type"] == "run" and recs[-1]["status"] == "completed"
    ops = {r["data"]["model"] for r in recs if r["type"] == "measurement"}
    assert {"selective_scan", "selective_state_update", "ssd_chunk_scan", "causal_conv1d",
            "causal_conv1d_update", "hbm_copy"} <= ops
    scan = next(r["data"] for r in recs if r["type"] == "measurement" and r["data"]["model"] == "selective_scan")
    assert scan["previous_ms"] > 0 and scan["previous_max_rel_err"] < 1e-6



def test_kernel_bench_ops_filter(tmp_path):
    """--ops selective_scan times the scan alone (what a short GPU call runs); its rows are in the file."""
    out = tmp_path / "k.jsonl"
    run(["kernel-bench", "--smoke", "--no-slow", "--ops", "selective_scan", "--out", str(out)], tmp_path,
        interpret=True)
    recs = records(out)
    assert recs[-1]["status"] == "completed"
    ops = [r["data"]["model"] for r in recs if r["type"] == "measurement"]
    assert set(ops) == {"selective_scan", "hbm_copy"} and ops.count("selective_scan") == 2  # both layouts

def test_ssm_bench_smoke(tmp_path):
    out = tmp_path / "e.jsonl"
    stdout = run(["ssm-bench", "--smoke", "--out", str(out), "--lengths", "8,16", "--contexts", "8",
                  "--new-tokens", "3", "--repeats", "1", "--hf-lengths", "8"], tmp_path, interpret=False)
    assert "mamba2-130m decode tok/s" in stdout.strip().splitlines()[-1]
    rows = [r["data"] for r in records(out) if r["type"] == "measurement"]
    assert {r["path"] for r in rows} == {"hf-torch", "cpu-chunked"}  # the CPU fast path, next to HF's own
    assert any(r.get("prefill_ms") for r in rows) and any(r.get("decode_tok_s") for r in rows)
