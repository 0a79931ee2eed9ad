"""Blind A/B votes (the Arena's A/B page): one row per vote with the prompt, both outputs and the models.

    store.add_vote({"prompt", "model_a", "model_b", "family_a", "family_b", "output_a", "output_b",
                    "vote": "a" | "b" | "tie" | "both_bad", "settings": {...}, "meta": {...}, ...}) -> vote_id
    store.votes() -> DataFrame (oldest first; settings / meta / extra are dicts)

Unknown keys go to `extra` (e.g. each side's metrics). The table comes from schema step 3.
"""

from __future__ import annotations

import pandas as pd

from store.errors import StoreError
from store.records import new_id, utc_now
from store.rows import decode_json_columns, normalize_all
from store.schema import VOTES

VOTE_CHOICES = ("a", "b", "tie", "both_bad")
REQUIRED = ("prompt", "model_a", "model_b", "output_a", "output_b", "vote")


class VotesMixin:
    """Mixed into Store; relies on Store.session() and Store._insert()."""

    def add_vote(self, vote: dict) -> str:
        if not isinstance(vote, dict):
            raise StoreError(f"A vote must be a dict, got {type(vote).__name__}.")
        missing = [k for k in REQUIRED if vote.get(k) is None]
        if missing:
            raise StoreError(f"A vote needs {', '.join(missing)}; nothing was saved.")
        if vote["vote"] not in VOTE_CHOICES:
            raise StoreError(f"A vote is one of {', '.join(VOTE_CHOICES)}, not {vote['vote']!r}.")
        row = {**vote, "vote_id": vote.get("vote_id") or new_id(), "created_at": vote.get("created_at") or utc_now()}
        rows = normalize_all([row], VOTES, "vote")
        with self.session() as con:
            self._insert(con, "votes", rows, VOTES, ignore_existing=False)
        return row["vote_id"]

    def votes(self) -> pd.DataFrame:
        with self.session() as con:
            df = con.execute("SELECT * FROM votes ORDER BY created_at, vote_id").df()
        return decode_json_columns(df, VOTES)
