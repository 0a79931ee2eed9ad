"""Blind A/B: one model with state space layers (Mamba, Mamba-2 or a hybrid) and one transformer answer the
same prompt in anonymous columns A and B (which is which is drawn at random), the user votes, and the vote is
stored with the prompt and both outputs.

    pair = draw_pair(offered_specs)                    # raises NoPairError with a sentence
    ... both columns generate (backend.generation.compare.CompareJob, labels "A" and "B") ...
    record_vote(store, pair, prompt, outputs, vote, settings, metrics) -> vote_id
    votes_frame(store) -> DataFrame                    # for the leaderboard (backend.arena.ratings) and export

The draw uses `secrets.SystemRandom` unless a seeded random.Random is passed (tests), so neither the order
nor the models can be guessed from earlier pairs.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from backend.generation.interface import SSM_FAMILIES, GenSettings
from backend.runinfo import git_sha

VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
EXPORT_COLUMNS = ["vote_id", "created_at", "vote", "model_a", "model_b", "family_a", "family_b", "prompt", "output_a",
                  "output_b", "settings", "meta", "extra"]


class NoPairError(ValueError):
    """No SSM or no transformer can be offered here (the message says what to do)."""


@dataclass(frozen=True)
class BlindPair:
    model_a: str
    model_b: str
    family_a: str
    family_b: str

    def side(self, label: str) -> str:
        return self.model_a if label == "A" else self.model_b


STATE_FAMILIES = (*SSM_FAMILIES, "hybrid")  # the side that is not a transformer: the research question's SSMs and hybrids


def draw_pair(specs, rng: random.Random | None = None) -> BlindPair:
    """One model of STATE_FAMILIES (mamba / mamba2 / hybrid) and one transformer from `specs`, in random order."""
    rng = rng or secrets.SystemRandom()
    ssms = [s for s in specs if s.family in STATE_FAMILIES]
    tfs = [s for s in specs if s.family == "transformer"]
    if not ssms or not tfs:
        missing = "state space model (Mamba / Mamba-2 / hybrid)" if not ssms else "transformer"
        raise NoPairError(f"Blind A/B needs at least one {missing} that can load here. Add one on the Models "
                          "page (a local folder) or use the bundled models.")
    ssm, tf = rng.choice(ssms), rng.choice(tfs)
    a, b = (ssm, tf) if rng.random() < 0.5 else (tf, ssm)
    return BlindPair(a.name, b.name, a.family, b.family)


def record_vote(store, pair: BlindPair, prompt: str, outputs: dict[str, str], vote: str, settings: GenSettings,
                metrics: dict[str, dict] | None = None, source: str = "ui") -> str:
    """Store one vote (store.add_vote); outputs / metrics are keyed by "A" and "B"."""
    metrics = metrics or {}
    # light meta (no torch import at vote time): the code version and where each side ran
    meta = {"git_sha": git_sha(), "devices": {k: (m or {}).get("device") for k, m in metrics.items()}}
    return store.add_vote({
        "prompt": prompt, "model_a": pair.model_a, "model_b": pair.model_b, "family_a": pair.family_a,
        "family_b": pair.family_b, "output_a": outputs.get("A", ""), "output_b": outputs.get("B", ""),
        "vote": vote, "settings": asdict(settings), "meta": meta, "source": source,
        "metrics_a": metrics.get("A"), "metrics_b": metrics.get("B"),
    })


def votes_frame(store) -> pd.DataFrame:
    """Every stored vote, newest first, with the export columns first."""
    df = store.votes()
    if df.empty:
        return pd.DataFrame(columns=EXPORT_COLUMNS)
    df = df.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)
    return df[[c for c in EXPORT_COLUMNS if c in df.columns] + [c for c in df.columns if c not in EXPORT_COLUMNS]]


def export_votes(votes: pd.DataFrame, path: str | Path) -> int:
    """Write votes to .csv / .parquet (dict cells as JSON text) or .jsonl; returns the number of votes."""
    path = Path(path)
    out = votes.copy()
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in out.to_dict("records")))
        return len(out)
    for c in out.columns:
        if out[c].map(lambda v: isinstance(v, dict | list)).any():
            out[c] = out[c].map(lambda v: json.dumps(v, default=str) if isinstance(v, dict | list) else v)
    if path.suffix == ".parquet":
        out.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        out.to_csv(path, index=False)
    else:
        raise ValueError(f"Export to .csv, .parquet or .jsonl, not {path.suffix or 'a file without a suffix'}.")
    return len(out)
