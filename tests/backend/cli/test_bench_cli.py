"""`python -m backend bench`: argument errors are sentences (exit 2); a tiny run lands in the DuckDB store."""

import argparse
import json

import pytest

from backend.bench import shapes as shapes_mod
from backend.bench.shapes import Shape, _kw
from backend.cli import bench


def _parse(argv):
    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_bad_arguments_exit_2_with_a_sentence(capsys):
    assert bench.main(_parse(["--prompt-lens", "512,abc"])) == 2
    assert "comma-separated whole numbers" in capsys.readouterr().err
    assert bench.main(_parse(["--models", "gpt-5"])) == 2
    assert "Unknown benchmark model 'gpt-5'" in capsys.readouterr().err


def test_tiny_run_is_stored_and_the_last_line_is_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(shapes_mod.SHAPES, "tiny-neox", Shape(
        "tiny-neox", "transformer", "GPTNeoXConfig",
        _kw(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)))
    db = tmp_path / "arena.duckdb"
    args = _parse(["--models", "tiny-neox", "--device", "cpu", "--prompt-lens", "8", "--new-tokens", "3",
                   "--batches", "1", "--batch-prompt-len", "8", "--batch-new-tokens", "3", "--repeats", "1",
                   "--no-hf-baseline", "--no-eager-baseline", "--db", str(db), "--quiet"])
    assert args.isolate is None
    assert bench.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"] == 2 and summary["max_batch"] == {"tiny-neox": 1.0}
    assert summary["points"] == 2 and summary["oom"] == summary["errors"] == 0  # max_batch rows not counted
    from store import open_store

    store = open_store(str(db))
    runs = store.runs(kind="bench")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed"
    assert runs.iloc[0]["config"]["isolate"] is False  # CPU: one process
    rows = store.measurements(kinds="bench", expand_extra=True)
    assert set(rows["phase"]) == {"context", "batch", "max_batch"}
    assert (rows[rows["metric"] == "point"]["path"] == "sdpa+static").all()


@pytest.mark.parametrize("flag,expected", [("--isolate", True), ("--no-isolate", False)])
def test_isolate_flags(flag, expected):
    assert _parse([flag]).isolate is expected
