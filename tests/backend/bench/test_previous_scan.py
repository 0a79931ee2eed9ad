"""scripts/previous_scan.py: an earlier commit's scan with its own launch rules, loadable by kernel-bench."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_previous_scan_inlines_its_launch_rules_and_loads(tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("needs the git history (a checkout, not a copied tree)")
    out = tmp_path / "previous_selective_scan.py"
    subprocess.run([sys.executable, "scripts/previous_scan.py", "HEAD", str(out)], cwd=ROOT, check=True)
    text = out.read_text()
    assert "from kernels.launch import scan_config" not in text and "def scan_config(" in text
    from backend.bench.kernels import _load_previous_scan

    fn = _load_previous_scan(str(out))
    mod = sys.modules["previous_selective_scan"]
    assert callable(fn) and mod.scan_config(16, "cuda").num_warps >= 1  # its own LaunchConfig dataclass
    assert importlib.util.find_spec("kernels.selective_scan").origin != str(out)


def test_scan_sweep_starts_from_the_default_and_changes_one_thing_at_a_time():
    """kernel-bench --sweep times the NVIDIA default first, so its first row is the number the scan ships with,
    then variants that each change one thing (a split rule, a flag, the program size)."""
    import dataclasses

    from backend.bench.kernels import sweep_configs
    from kernels.launch import scan_config

    configs = sweep_configs("scan")
    default = scan_config(16, "cuda")
    assert configs[0] == default
    assert len(set(configs)) == len(configs)
    for c in configs[1:]:
        changed = {f.name for f in dataclasses.fields(c) if getattr(c, f.name) != getattr(default, f.name)}
        assert 1 <= len(changed) <= 4, changed  # e.g. 128-channel programs: block, warps and the program counts
