"""Bradley-Terry scores from blind A/B votes (backend/arena/ratings.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from backend.arena.ratings import ELO, _design, bt_scores, fit_bt


def _votes(rows) -> pd.DataFrame:
    return pd.DataFrame([{"model_a": a, "model_b": b, "family_a": a.split("-")[0], "family_b": b.split("-")[0],
                          "vote": v} for a, b, v in rows])


def _simulate(strength: dict[str, float], n: int, seed: int = 0, ties: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = sorted(strength)
    rows = []
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + math.exp(-(strength[a] - strength[b])))
        rows.append((a, b, "tie" if rng.random() < ties else ("a" if rng.random() < p else "b")))
    return _votes(rows)


def test_the_fit_is_the_penalised_maximum_likelihood_of_the_bradley_terry_model():
    """Same optimum as a direct minimisation of the weighted logistic loss + ||b||^2 / (2C) (scipy)."""
    v = _simulate({"ssm-a": 0.4, "ssm-b": -0.2, "tf-c": 0.0}, 60, seed=3, ties=0.15)
    names = sorted(set(v["model_a"]) | set(v["model_b"]))
    ai = np.array([names.index(x) for x in v["model_a"]])
    bi = np.array([names.index(x) for x in v["model_b"]])
    out = v["vote"].map({"a": 1.0, "b": 0.0, "tie": 0.5}).to_numpy()
    X, y, w = _design(ai, bi, out, len(names))

    def loss(b):
        z = X @ b
        return float(np.sum(w * np.logaddexp(0, -(2 * y - 1) * z)) + 0.5 * b @ b)

    direct = minimize(loss, np.zeros(len(names)), method="BFGS").x
    assert np.allclose(fit_bt(ai, bi, out, len(names)), direct - direct.mean(), atol=1e-4)


def test_known_strengths_are_recovered_with_intervals_that_cover_them():
    v = _simulate({"ssm-x": 1.0, "tf-y": 0.0}, 1500, seed=1)
    s = bt_scores(v, n_resamples=100).set_index("player")
    gap = s.loc["ssm-x", "score"] - s.loc["tf-y", "score"]
    assert abs(gap - ELO * 1.0) < 30  # 400 / ln 10 per unit of log-odds: about 174 points
    for p in ("ssm-x", "tf-y"):
        assert s.loc[p, "ci_low"] < s.loc[p, "score"] < s.loc[p, "ci_high"]
    assert s.loc["ssm-x", "ci_low"] > s.loc["tf-y", "ci_high"]  # clearly separated at n = 1500
    assert s["score"].mean() == pytest.approx(1000)


def test_one_vote_gives_finite_ordered_scores_and_no_interval():
    s = bt_scores(_votes([("ssm-a", "tf-b", "b")]))
    assert list(s["player"]) == ["tf-b", "ssm-a"] and np.isfinite(s["score"]).all()
    assert s["ci_low"].isna().all() and list(s["wins"]) == [1, 0] and list(s["losses"]) == [0, 1]


def test_ties_and_both_bad_count_as_half_a_win_each_and_are_listed():
    v = _votes([("ssm-a", "tf-b", "tie"), ("tf-b", "ssm-a", "both_bad"), ("ssm-a", "tf-b", "tie")])
    s = bt_scores(v, n_resamples=20).set_index("player")
    assert s["score"].tolist() == pytest.approx([1000, 1000])
    assert s.loc["ssm-a", "ties"] == 2 and s.loc["ssm-a", "both_bad"] == 1 and s.loc["ssm-a", "votes"] == 3


def test_by_family_pools_the_models_of_a_family():
    v = _votes([("ssm-a", "tf-b", "a"), ("ssm-c", "tf-b", "a"), ("tf-b", "ssm-a", "b"), ("ssm-c", "tf-d", "b")])
    s = bt_scores(v, by="family", n_resamples=20).set_index("player")
    assert set(s.index) == {"ssm", "tf"} and s.loc["ssm", "votes"] == 4 and s.loc["ssm", "wins"] == 3
    assert s.loc["ssm", "score"] > s.loc["tf", "score"]
    with pytest.raises(ValueError, match="by 'model' or by 'family'"):
        bt_scores(v, by="colour")


def test_no_votes_is_an_empty_table():
    assert bt_scores(pd.DataFrame()).empty and bt_scores(_votes([("ssm-a", "ssm-a", "a")])).empty
