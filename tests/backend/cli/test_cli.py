"""The CLI through real subprocesses (`python -m backend ...`), the way users run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, "USE_HUB_KERNELS": "0", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {"SSM_ARENA_DATA": str(root / "data"), "SSM_ARENA_DB": str(root / "arena.duckdb")}


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("generate", "models", "import-results"):
        assert cmd in out.stdout


def test_generate_with_default_models_records_run(cli_env):
    out = run_cli("generate", "--models", "toy-mamba,toy-transformer", "--prompt", "Once upon a time",
                  "--max-new-tokens", "5", "--no-eos", env_extra=cli_env)
    assert out.returncode == 0, out.stderr
    # the bundled trained checkpoint when assets/models/toy-mamba exists, else the labelled placeholder
    assert "=== toy-mamba (mamba" in out.stdout and "toy-transformer" in out.stdout
    assert "TTFT ms" in out.stdout and "Traceback" not in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["new_tokens"] == {"toy-mamba": 5, "toy-transformer": 5}
    from store import open_store

    st = open_store(cli_env["SSM_ARENA_DB"])
    runs = st.runs(kind="generate")
    assert list(runs["run_id"]) == [summary["run_id"]] and runs["status"].iloc[0] == "completed"
    ms = st.measurements(run_ids=[summary["run_id"]])
    assert sorted(ms["model"]) == ["toy-mamba", "toy-transformer"]
    assert set(ms["cache_kind"]) == {"kv", "ssm_state"} and (ms["new_tokens"] == 5).all()
    preds = st.predictions(run_id=summary["run_id"])
    assert set(preds["prompt"]) == {"Once upon a time"} and len(preds) == 2


@pytest.mark.parametrize("args, message", [
    (["generate", "--models", "no-such-model", "--prompt", "hi"], "no model named 'no-such-model'"),
    (["generate", "--models", "toy-mamba", "--prompt", "hi", "--max-new-tokens", "0"], "max_new_tokens"),
    (["generate", "--models", "toy-mamba", "--prompt", "  "], "prompt is empty"),
    (["generate", "--models", "EleutherAI/pythia-160m", "--prompt", "hi"], "HF_HUB_OFFLINE"),
    (["import-results", "/nonexistent/folder"], "no results folder"),
])
def test_user_errors_exit_2_without_traceback(cli_env, tmp_path, args, message):
    env = {**cli_env, "SSM_ARENA_FAKE": "1"} if "prompt is empty" in message or "max_new" in message else cli_env
    env = {**env, "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    out = run_cli(*args, env_extra=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.startswith("error:")]) == 1


def test_models_and_import_results(cli_env, tmp_path):
    out = run_cli("models", "--json", env_extra=cli_env)
    assert out.returncode == 0
    rows = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert {"toy-mamba", "state-spaces/mamba-130m-hf"} <= {r["name"] for r in rows}
    from store import RecordWriter

    folder = tmp_path / "results"
    folder.mkdir()
    w = RecordWriter(folder / "gpu.jsonl")
    run_id = w.start_run("generate", {"source": "test"}, {"device_name": "test"})
    w.add_measurements(run_id, [{"model": "m", "family": "mamba", "ttft_ms": 1.0}])
    w.finish_run(run_id, "completed")
    db = str(tmp_path / "imp.duckdb")
    first = run_cli("import-results", str(folder), "--db", db, env_extra=cli_env)
    second = run_cli("import-results", str(folder), "--db", db, env_extra=cli_env)
    assert first.returncode == second.returncode == 0, first.stderr
    assert json.loads(first.stdout)["imported"]["measurements"] == 1
    assert json.loads(second.stdout)["imported"]["measurements"] == 0


def test_broken_command_module_is_skipped(tmp_path, monkeypatch):
    pkg = tmp_path / "cmdpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("def register(sub):\n    sub.add_parser('good', help='works')\n")
    (pkg / "broken.py").write_text("import does_not_exist_anywhere\n")
    (pkg / "helper.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from backend.cli import build_parser

    warnings = []
    parser = build_parser(warn=warnings.append, commands_dir=pkg, package="cmdpkg")
    assert "good" in parser.format_help() and "broken" not in parser.format_help()
    assert len(warnings) == 1 and "cmdpkg.broken" in warnings[0]
