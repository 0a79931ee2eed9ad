"""Bradley-Terry scores from blind A/B votes, with bootstrap 95% intervals (by model or by family).

The model: P(i beats j) = 1 / (1 + exp(-(b_i - b_j))). It is fitted as a logistic regression without an
intercept on rows x = e_i - e_j (scikit-learn's LogisticRegression, Newton-Cholesky solver: the approach of
LMSYS's Chatbot Arena), shown on the Elo scale (1000 + 400 / ln 10 * b, centred on the mean player). Votes:

    a / b       one win for that side
    tie         half a win each (two rows of weight 1/2)
    both_bad    counted as a tie for the scores (LMSYS "tie (bothbad)"), and listed on its own in the table

Every row is also entered mirrored (x -> -x, y -> 1 - y) at half weight: the likelihood is unchanged, and
the fit always sees both classes (scikit-learn refuses one class, e.g. a single vote). The fit is
L2-regularised (C = 1.0, a standard-normal prior on each b), so a handful of one-sided votes gives a finite
score instead of an infinite one; with many votes the prior stops mattering. Intervals: scipy.stats.bootstrap
(percentile method) resampling whole votes and refitting.

    bt_scores(votes, by="model", n_resamples=200, seed=0) -> DataFrame
        player, score, ci_low, ci_high, votes, wins, losses, ties, both_bad, win_rate
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

VOTES = ("a", "b", "tie", "both_bad")
ELO = 400 / math.log(10)
COLUMNS = ["player", "score", "ci_low", "ci_high", "votes", "wins", "losses", "ties", "both_bad", "win_rate"]


def _design(a_idx: np.ndarray, b_idx: np.ndarray, outcome: np.ndarray, n_players: int):
    """Rows (x, y, weight) for the logistic fit; outcome 1 = A won, 0 = B won, 0.5 = tie."""
    n = len(outcome)
    x = np.zeros((n, n_players))
    x[np.arange(n), a_idx] += 1.0
    x[np.arange(n), b_idx] -= 1.0
    win = outcome == 1.0
    loss = outcome == 0.0
    tie = ~(win | loss)
    xs = [x[win], x[loss], x[tie], x[tie]]
    ys = [np.ones(win.sum()), np.zeros(loss.sum()), np.ones(tie.sum()), np.zeros(tie.sum())]
    ws = [np.ones(win.sum()), np.ones(loss.sum()), np.full(tie.sum(), 0.5), np.full(tie.sum(), 0.5)]
    X, y, w = np.vstack(xs), np.concatenate(ys), np.concatenate(ws)
    return np.vstack([X, -X]), np.concatenate([y, 1 - y]), np.concatenate([w, w]) / 2


def fit_bt(a_idx, b_idx, outcome, n_players: int, C: float = 1.0) -> np.ndarray:
    """Bradley-Terry strengths b (natural-log odds scale), centred on their mean."""
    from sklearn.linear_model import LogisticRegression

    X, y, w = _design(np.asarray(a_idx), np.asarray(b_idx), np.asarray(outcome, dtype=float), n_players)
    model = LogisticRegression(fit_intercept=False, C=C, solver="newton-cholesky", max_iter=200)
    model.fit(X, y, sample_weight=w)
    b = model.coef_[0]
    return b - b.mean()


def _outcomes(votes: pd.Series) -> np.ndarray:
    return votes.map({"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}).to_numpy(dtype=float)


def bt_scores(votes: pd.DataFrame, by: str = "model", n_resamples: int = 200, seed: int = 0,
              C: float = 1.0) -> pd.DataFrame:
    """Scores of every player ("model": model_a / model_b; "family": family_a / family_b)."""
    if by not in ("model", "family"):
        raise ValueError(f"Scores are by 'model' or by 'family', not {by!r}.")
    if votes is None or votes.empty:
        return pd.DataFrame(columns=COLUMNS)
    v = votes[votes["vote"].isin(VOTES)]
    a, b = v[f"{by}_a"].astype(str).to_numpy(), v[f"{by}_b"].astype(str).to_numpy()
    v = v[a != b]  # a player against itself tells nothing about strengths
    if v.empty:
        return pd.DataFrame(columns=COLUMNS)
    a, b = v[f"{by}_a"].astype(str).to_numpy(), v[f"{by}_b"].astype(str).to_numpy()
    players = sorted(set(a) | set(b))
    index = {p: i for i, p in enumerate(players)}
    ai, bi = np.array([index[p] for p in a]), np.array([index[p] for p in b])
    out = _outcomes(v["vote"])
    scores = fit_bt(ai, bi, out, len(players), C)
    lo = hi = np.full(len(players), np.nan)
    if n_resamples and len(v) >= 2:
        from scipy.stats import bootstrap

        def stat(idx):
            idx = np.asarray(idx, dtype=int)
            return fit_bt(ai[idx], bi[idx], out[idx], len(players), C)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate resample (every vote alike) is still a valid draw
            res = bootstrap((np.arange(len(v)),), stat, n_resamples=n_resamples, method="percentile",
                            vectorized=False, rng=np.random.default_rng(seed))
        lo, hi = res.confidence_interval.low, res.confidence_interval.high
    rows = []
    both_bad = (v["vote"] == "both_bad").to_numpy()
    for p, i in index.items():
        as_a, as_b = ai == i, bi == i
        wins = int(((out == 1) & as_a).sum() + ((out == 0) & as_b).sum())
        losses = int(((out == 0) & as_a).sum() + ((out == 1) & as_b).sum())
        n = int((as_a | as_b).sum())
        bad = int((both_bad & (as_a | as_b)).sum())
        rows.append([p, 1000 + ELO * scores[i], 1000 + ELO * lo[i], 1000 + ELO * hi[i], n, wins, losses,
                     n - wins - losses - bad, bad, wins / n if n else float("nan")])
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("score", ascending=False).reset_index(drop=True)
