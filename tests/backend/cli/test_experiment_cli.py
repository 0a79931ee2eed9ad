"""`python -m backend experiment ...`: the same config the UI builds, JSONL output, errors, resume."""

from __future__ import annotations

import json
import shlex

import pytest

from backend.cli import experiment as cmd
from backend.experiments.config import ExperimentConfig, default_config
from store import open_store
from tests.backend.cli_helpers import parser, run_cli


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")


@pytest.mark.parametrize("cfg", [
    default_config("fewshot", ["toy-mamba", "toy-transformer"]),
    ExperimentConfig("long-context", ["a"], n=2, seed=3, sweep={"length": [512, 4096], "depth": [0.0, 0.5, 1.0], "keys": [1, 2]},
                     task="passkey", max_new_tokens=9),
    ExperimentConfig("cot", ["a", "b", "c"], n=7, sweep={"steps": [1, 4], "mode": ["cot"]}, data="my data.jsonl"),
])
def test_ui_config_round_trips_through_the_command_line(cfg):
    argv = shlex.split(cfg.to_cli())
    assert argv[:4] == ["python", "-m", "backend", "experiment"]
    args = parser().parse_args(argv[3:])
    assert cmd.config_from_args(args) == cfg


def test_jsonl_output_imports_into_the_store(fake, tmp_path, capsys):
    out_file = tmp_path / "exp_cot.jsonl"
    rc, out, err = run_cli(["experiment", "cot", "--models", "toy-mamba,toy-transformer", "--n", "2", "--steps",
                            "1,2", "--jsonl", str(out_file), "--quiet"], capsys)
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["done"] == summary["total"] == 16
    assert "toy-mamba" in out and "[" in out  # the table of accuracies with intervals
    st = open_store(tmp_path / "a.duckdb")
    st.import_jsonl(out_file)
    run = st.runs().iloc[0]
    assert run["run_id"] == summary["run_id"] and run["status"] == "completed" and run["kind"] == "experiment-cot"
    assert len(st.predictions(run_id=run["run_id"])) == 16


def test_resume_from_the_cli(fake, tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.duckdb"
    st = open_store(db)
    from backend.experiments.runner import run_experiment
    from backend.models.manager import ModelManager

    cfg = default_config("fewshot", ["toy-mamba", "toy-transformer"])
    cfg.n, cfg.sweep = 3, {"k": [0, 1]}
    first = run_experiment(cfg, ModelManager().get, st, should_stop=lambda: True, meta={})
    assert first.status == "cancelled" and first.done == 0
    rc, out, err = run_cli(["experiment", "fewshot", "--resume", first.run_id, "--db", str(db), "--quiet"], capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["done"] == 12
    rc, out, err = run_cli(["experiment", "cot", "--resume", first.run_id, "--db", str(db)], capsys)
    assert rc == 2 and "is a fewshot run" in err


@pytest.mark.parametrize("argv, message", [
    (["experiment", "cot", "--ks", "1,2"], "--ks does not apply to the cot experiment"),
    (["experiment", "fewshot", "--ks", "1,x"], "'x' is not a valid int"),
    (["experiment", "long-context", "--depths", "1.5"], "Depths are fractions between 0 and 1"),
    (["experiment", "fewshot", "--models", "no-such-model", "--n", "1"], "no-such-model"),
    (["experiment", "fewshot", "--task", "nope"], "No built-in fewshot task named 'nope'"),
    (["experiment", "cot", "--data", "/nonexistent.jsonl"], "does not exist"),
])
def test_bad_input_gives_a_sentence_and_exit_code_2(fake, tmp_path, capsys, argv, message):
    rc, out, err = run_cli([*argv, "--db", str(tmp_path / "e.duckdb"), "--quiet"], capsys)
    assert rc == 2
    assert message in err and "Traceback" not in err
