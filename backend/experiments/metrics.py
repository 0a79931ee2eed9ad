"""Answer extraction rules and metrics for the experiments (pure Python, no torch).

Extraction follows lm-evaluation-harness's gsm8k_cot filters:
  strict   "answer_is":   the number after "The answer is" (first occurrence)
  flexible "last_number": the last number anywhere in the output
Other rules: "first_number" (passkeys), "leading_number" (the output must start with it), "first_line" (short generated answers), "full" (whole output).
Outputs are first cut at the task's stop strings (lm-eval's `until`), so a model that goes on to write
the next "Q:" is judged on its own answer only.

Scores:
  exact_match    1.0 when the normalised extracted answer equals the normalised reference
                 (case-insensitive; commas, "$" and a trailing "." dropped; "5.0" equals "5")
  token_f1       SQuAD-style token overlap F1 (lower case, punctuation and articles removed)
  within_one     1.0 when both are numbers at most 1 apart (direct arithmetic: a near miss, not the answer)
  word_accuracy  share of the reference's words reproduced at their own position (copying)
Statistics come from statsmodels, never written out here: aggregates carry n and a 95% Wilson score interval
(`proportion_confint`); two models on the same items are compared by McNemar's exact test (`mcnemar`) and the
mean paired difference with its 95% t interval (`DescrStatsW.tconfint_mean`); Holm's correction across a table's
cells (`multipletests`).
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_ANSWER_IS = re.compile(r"the answer is:?\s*(" + NUMBER + ")", re.IGNORECASE)
_NUMBER = re.compile(NUMBER)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
# _STATSMODELS_LAZY: statsmodels is imported inside the four functions that call it: it takes about 3 s to
# import on this CPU, and the experiment pages import this module (tests/test_architecture.py keeps it out of
# the UI's import closure).


def truncate_at_stop(text: str, stops: list[str] | tuple[str, ...]) -> str:
    """Cut `text` at the earliest stop string (the stop string itself is dropped)."""
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def normalize_number(s: str) -> str:
    """'1,234' -> '1234', '$5' -> '5', '5.0' -> '5', '-3.50' -> '-3.5'; non-numbers returned stripped."""
    t = s.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(t)
    except ValueError:
        return s.strip()
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


Span = tuple[int, int] | None


def _answer_is(text: str) -> tuple[str, Span]:
    m = _ANSWER_IS.search(text)
    return (normalize_number(m.group(1)), m.span(1)) if m else ("", None)


def _last_number(text: str) -> tuple[str, Span]:
    found = list(_NUMBER.finditer(text))
    return (normalize_number(found[-1].group(0)), found[-1].span()) if found else ("", None)


def _first_number(text: str) -> tuple[str, Span]:
    m = _NUMBER.search(text)
    return (normalize_number(m.group(0)), m.span()) if m else ("", None)


_LEADING = re.compile(r"\s*(" + NUMBER + ")")


def _leading_number(text: str) -> tuple[str, Span]:
    m = _LEADING.match(text)
    return (normalize_number(m.group(1)), m.span(1)) if m else ("", None)


def _first_line(text: str) -> tuple[str, Span]:
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            lead = len(line) - len(line.lstrip())
            value = line.strip()
            return value, (offset + lead, offset + lead + len(value))
        offset += len(line)
    return "", None


def _full(text: str) -> tuple[str, Span]:
    value = text.strip()
    if not value:
        return "", None
    lead = len(text) - len(text.lstrip())
    return value, (lead, lead + len(value))


EXTRACTORS: dict[str, Callable[[str], tuple[str, Span]]] = {
    "answer_is": _answer_is,
    "last_number": _last_number,
    "first_number": _first_number,
    "leading_number": _leading_number,
    "first_line": _first_line,
    "full": _full,
}


def extract_with_span(rule: str, text: str) -> tuple[str, Span]:
    """(extracted answer, its (start, end) in `text` or None when nothing was found)."""
    try:
        fn = EXTRACTORS[rule]
    except KeyError:
        raise ValueError(f"Unknown extraction rule {rule!r}; choose one of {sorted(EXTRACTORS)}.") from None
    return fn(text)


def extract(rule: str, text: str) -> str:
    return extract_with_span(rule, text)[0]


def normalize_text(s: str) -> str:
    """Lower case, numbers normalised, surrounding whitespace and a trailing period removed."""
    t = s.strip().rstrip(".").strip()
    if _NUMBER.fullmatch(t):
        return normalize_number(t)
    return " ".join(t.lower().split())


def exact_match(prediction: str, reference: str) -> float:
    if not prediction.strip():
        return 0.0
    return float(normalize_text(prediction) == normalize_text(reference))


def _f1_tokens(s: str) -> list[str]:
    s = s.lower().translate(_PUNCT)
    return _ARTICLES.sub(" ", s).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _f1_tokens(prediction), _f1_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def within_one(prediction: str, reference: str) -> float:
    """1.0 when prediction and reference are numbers at most 1 apart."""
    try:
        return float(abs(float(normalize_number(prediction)) - float(normalize_number(reference))) <= 1)
    except ValueError:
        return 0.0


def word_accuracy(prediction: str, reference: str) -> float:
    """Share of the reference's words that the prediction has at the same position (case-insensitive)."""
    ref, pred = reference.lower().split(), prediction.lower().split()
    if not ref:
        return float(not pred)
    return sum(a == b for a, b in zip(ref, pred, strict=False)) / len(ref)


METRICS: dict[str, Callable[[str, str], float]] = {"exact_match": exact_match, "token_f1": token_f1,
                                                   "within_one": within_one, "word_accuracy": word_accuracy}


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (statsmodels; successes may be a sum of fractional scores)."""
    if n <= 0:
        return (0.0, 1.0)
    p = min(max(successes / n, 0.0), 1.0)
    from statsmodels.stats.proportion import proportion_confint  # see _STATSMODELS_LAZY

    lo, hi = proportion_confint(p * n, n, alpha=0.05, method="wilson")
    # the bound at 0 (or 1) is exact when every score is 0 (or 1); floating point would leave ~1e-17
    return (0.0 if p <= 0 else max(0.0, float(lo)), 1.0 if p >= 1 else min(1.0, float(hi)))


def mcnemar_pvalue(a_only: int, b_only: int) -> float:
    """McNemar's exact test (statsmodels) of two models on the same items: `a_only` items only model A got
    right, `b_only` only model B. Items both got right or wrong carry no information about the difference."""
    from statsmodels.stats.contingency_tables import mcnemar  # see _STATSMODELS_LAZY

    return float(mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of a - b over paired items and its 95% t interval (statsmodels DescrStatsW.tconfint_mean).
    Identical scores on every item give (0, 0, 0); a single item gives an unbounded interval (-1, 1)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size == 0:
        return (0.0, -1.0, 1.0)
    mean = float(d.mean())
    if d.size == 1:
        return (mean, -1.0, 1.0)
    if not d.std():
        return (mean, mean, mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from statsmodels.stats.weightstats import DescrStatsW  # see _STATSMODELS_LAZY

        lo, hi = DescrStatsW(d).tconfint_mean(alpha=0.05)
    return (mean, float(lo), float(hi))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests) for a family of tests, e.g. every cell of a table."""
    if not len(pvalues):
        return []
    from statsmodels.stats.multitest import multipletests  # see _STATSMODELS_LAZY

    return [float(p) for p in multipletests(list(pvalues), alpha=0.05, method="holm")[1]]


def highlight_segments(text: str, rule: str) -> list[tuple[str, bool]]:
    """Split `text` into (piece, is_extracted_answer) parts, for plain-text display (never HTML).

    The answer is located by the same rule that extracted it, so the highlighted span is exactly what
    was scored. Text with no answer comes back as one unflagged piece.
    """
    if not text:
        return []
    _, span = extract_with_span(rule, text)
    if span is None:
        return [(text, False)]
    start, end = span
    parts = [(text[:start], False), (text[start:end], True), (text[end:], False)]
    return [p for p in parts if p[0]]
