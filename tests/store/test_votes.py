"""Blind A/B votes in the store (store/votes.py, schema step 3)."""

from __future__ import annotations

import duckdb
import pytest

from store import StoreError, open_store
from store.schema import MIGRATIONS


def _vote(**over) -> dict:
    return {"prompt": "Question: Where does Ana live?\nAnswer:", "model_a": "toy-mamba", "model_b": "toy-transformer",
            "family_a": "mamba", "family_b": "transformer", "output_a": " Riverford\n", "output_b": " <b>x</b>",
            "vote": "a", "settings": {"max_new_tokens": 16}, "meta": {"device": "cpu"},
            "metrics_a": {"ttft_ms": 3.5}, **over}


def test_a_vote_round_trips_with_its_prompt_outputs_and_json(store):
    vote_id = store.add_vote(_vote())
    votes = store.votes()
    assert list(votes["vote_id"]) == [vote_id]
    row = votes.iloc[0]
    assert row["prompt"].startswith("Question: Where does Ana live?") and row["output_b"] == " <b>x</b>"
    assert (row["model_a"], row["model_b"], row["vote"]) == ("toy-mamba", "toy-transformer", "a")
    assert row["settings"] == {"max_new_tokens": 16} and row["meta"] == {"device": "cpu"}
    assert row["extra"] == {"metrics_a": {"ttft_ms": 3.5}}  # unknown keys are kept, not dropped
    assert store.counts()["votes"] == 1


@pytest.mark.parametrize("bad, message", [({"vote": "maybe"}, "not 'maybe'"), ({"output_b": None}, "needs output_b")])
def test_a_bad_vote_is_a_sentence_and_nothing_is_saved(store, bad, message):
    with pytest.raises(StoreError, match=message):
        store.add_vote(_vote(**bad))
    assert store.votes().empty


def test_votes_come_back_oldest_first(store):
    ids = [store.add_vote(_vote(vote=v)) for v in ("a", "b", "tie", "both_bad")]
    assert list(store.votes()["vote_id"]) == ids
    assert list(store.votes()["vote"]) == ["a", "b", "tie", "both_bad"]


def test_a_database_of_the_previous_schema_gets_the_votes_table(db_path):
    """A store made before votes existed (steps 1-2) is migrated in place; its runs stay."""
    db_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    for version, name, statements in MIGRATIONS:
        if version < 3:
            for sql in statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name])
    con.execute("INSERT INTO runs (run_id, kind, status) VALUES ('r1', 'generate', 'completed')")
    con.close()
    st = open_store(db_path)
    assert 3 in st.applied_migrations
    assert list(st.runs()["run_id"]) == ["r1"]
    st.add_vote(_vote())
    assert len(st.votes()) == 1
