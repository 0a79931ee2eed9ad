"""`python -m backend ab`: a blind pair voted from a terminal, the leaderboard, the export (fake models)."""

from __future__ import annotations

import pandas as pd
import pytest

from backend.cli import main


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    return tmp_path / "votes.duckdb"


def test_a_blind_pair_vote_then_the_leaderboard_and_the_export(fake_env, tmp_path, capsys):
    db = str(fake_env)
    assert main(["ab", "--db", db, "--leaderboard"]) == 0
    assert "No votes are stored yet" in capsys.readouterr().out
    rc = main(["ab", "--db", db, "--prompt", "Question: Where does Ana live?\\nAnswer:", "--max-new-tokens", "6",
               "--vote", "b"])
    out = capsys.readouterr().out
    assert rc == 0 and "=== A ===" in out and "=== B ===" in out and "B is better. A was toy-" in out
    assert main(["ab", "--db", db, "--leaderboard", "--resamples", "20", "--export", str(tmp_path / "v.csv")]) == 0
    out = capsys.readouterr().out
    assert "Bradley-Terry scores by model (1 vote(s)" in out and "Bradley-Terry scores by family" in out
    votes = pd.read_csv(tmp_path / "v.csv")
    assert list(votes["vote"]) == ["b"] and votes["prompt"][0] == "Question: Where does Ana live?\nAnswer:"
    assert {votes["family_a"][0], votes["family_b"][0]} & {"mamba", "mamba2", "hybrid"} and "transformer" in {
        votes["family_a"][0], votes["family_b"][0]}


def test_without_an_action_it_says_what_to_give(fake_env, capsys):
    assert main(["ab", "--db", str(fake_env)]) == 2
    assert "give --prompt, --leaderboard or --export" in capsys.readouterr().err
