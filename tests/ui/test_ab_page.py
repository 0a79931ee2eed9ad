"""Blind A/B page through AppTest on fake models: anonymous columns, vote, reveal, stored vote, leaderboard."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from backend.arena import ab
from backend.generation.interface import SSM_FAMILIES
from backend.models import registry

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "ab.py")


def _page(prompt: str | None = "Tell me about Lon Neakelairk.\n") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    if prompt is not None:
        at.text_area(key="ab_prompt").set_value(prompt)
    return at


def _pair(at: AppTest) -> ab.BlindPair:
    return at.session_state["ab_state"]["pair"]


def test_a_pair_is_one_ssm_and_one_transformer_in_anonymous_columns(arena_env):
    at = _page()
    at.button(key="ab_new").click().run()
    assert not at.exception, at.exception
    pair = _pair(at)
    assert {registry.get_spec(pair.model_a).family in ab.STATE_FAMILIES,
            registry.get_spec(pair.model_b).family in ab.STATE_FAMILIES} == {True, False}
    assert [h.value for h in at.subheader][:2] == ["A", "B"]
    # the two answer columns (their code blocks are model output, which may say anything)
    cols = [c for c in at.columns if [h.value for h in c.subheader] in (["A"], ["B"])]
    assert len(cols) == 2
    shown = " ".join(e.value for c in cols for e in [*c.caption, *c.markdown, *c.text])
    assert "Prompt — what the model saw" in shown and "finished" in shown
    for name in (pair.model_a, pair.model_b, "mamba", "transformer", "params"):
        assert name not in shown  # nothing in the columns tells which is which before the vote
    assert not at.table  # no metrics (cache kind, params) either
    assert [b.label for b in at.button if b.key and b.key.startswith("ab_vote_")] == list(ab.VOTE_LABELS.values())


def test_vote_reveals_the_models_and_stores_the_vote_with_prompt_and_outputs(arena_env):
    from store import open_store

    at = _page()
    at.button(key="ab_new").click().run()
    pair = _pair(at)
    outputs = [c.value for c in at.code]
    at.button(key="ab_vote_b").click().run()
    assert not at.exception, at.exception
    reveal = at.success[0].value
    assert reveal.startswith("Your vote: B is better.") and f"A was {pair.model_a}" in reveal
    assert not [b for b in at.button if b.key and b.key.startswith("ab_vote_")]  # one vote per pair
    assert len(at.table) == 2  # the metrics appear with the identities
    votes = open_store(str(arena_env / "arena.duckdb")).votes()
    assert len(votes) == 1
    v = votes.iloc[0]
    assert (v["model_a"], v["model_b"], v["vote"]) == (pair.model_a, pair.model_b, "b")
    assert v["prompt"] == "Tell me about Lon Neakelairk.\n" and [v["output_a"], v["output_b"]] == outputs
    assert v["settings"]["max_new_tokens"] == 64 and v["extra"]["metrics_a"]["path"] == "fake"
    # the leaderboard has a row per model and per family, with an interval once there are votes
    by_model = at.dataframe[0].value
    assert set(by_model["player"]) == {pair.model_a, pair.model_b}
    assert list(by_model["votes"]) == [1, 1]
    winner = by_model.iloc[0]
    assert winner["player"] == pair.model_b and winner["wins"] == 1 and winner["score"] > 1000
    assert set(at.dataframe[1].value["player"]) == {pair.family_a, pair.family_b}
    assert {d.proto.label for d in at.get("download_button")} == {"Export votes (CSV)", "Export votes (Parquet)"}


def test_order_is_random_over_pairs(arena_env):
    specs = registry.list_specs()
    firsts = {ab.draw_pair(specs, random.Random(seed)).family_a in ab.STATE_FAMILIES for seed in range(40)}
    assert firsts == {True, False}


def test_the_hybrid_is_drawn_against_a_transformer():
    """A bundled hybrid takes the state-space side of a pair (as Mamba and Mamba-2 do); each pair is one such
    model and one transformer, never two of a kind."""
    specs = [registry.ModelSpec(name=n, family=f, source="local", location="") for n, f in
             (("m", "mamba"), ("m2", "mamba2"), ("h", "hybrid"), ("t", "transformer"))]
    pairs = [ab.draw_pair(specs, random.Random(seed)) for seed in range(60)]
    assert all(sorted([p.family_a == "transformer", p.family_b == "transformer"]) == [False, True] for p in pairs)
    assert {p.family_a if p.family_b == "transformer" else p.family_b for p in pairs} == {"mamba", "mamba2", "hybrid"}
    with pytest.raises(ab.NoPairError, match="hybrid"):
        ab.draw_pair([s for s in specs if s.family == "transformer"])


def test_without_a_transformer_the_page_says_what_to_do(arena_env, monkeypatch):
    from backend.arena import choices

    real = choices.model_choices

    def only_ssms(specs=None):
        c = real(specs)
        c.offered = [s for s in c.offered if s.family in SSM_FAMILIES]
        return c

    monkeypatch.setattr(choices, "model_choices", only_ssms)  # the page imports it on each run
    at = _page()
    at.button(key="ab_new").click().run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("Blind A/B needs at least one transformer"), errors


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_export_writes_every_vote(arena_env, tmp_path, suffix):
    from backend.generation.interface import GenSettings
    from store import open_store

    store = open_store(str(arena_env / "arena.duckdb"))
    pair = ab.BlindPair("toy-mamba", "toy-transformer", "mamba", "transformer")
    for vote in ("a", "tie"):
        ab.record_vote(store, pair, "p", {"A": "x, \"quoted\"", "B": "y"}, vote, GenSettings())
    out = tmp_path / f"votes{suffix}"
    assert ab.export_votes(ab.votes_frame(store), out) == 2
    back = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
            ".jsonl": lambda p: pd.read_json(io.StringIO(Path(p).read_text()), lines=True)}[suffix](out)
    assert sorted(back["vote"]) == ["a", "tie"] and set(back["output_a"]) == {"x, \"quoted\""}
