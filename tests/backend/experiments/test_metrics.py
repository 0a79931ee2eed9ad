"""Answer extraction on tricky outputs, scoring, Wilson intervals and answer highlighting."""

from __future__ import annotations

import pytest

from backend.experiments.metrics import (
    exact_match,
    extract,
    highlight_segments,
    normalize_number,
    token_f1,
    truncate_at_stop,
    wilson_interval,
)


@pytest.mark.parametrize("text, strict, flexible", [
    ("3 + 4 = 7.\nThe answer is 7.", "7", "7"),
    ("The answer is 1,234.", "1234", "1234"),  # thousands separator
    ("The answer is $5.00", "5", "5"),  # currency and trailing zeros
    ("the answer is -3", "-3", "-3"),  # case, negative, no final period
    ("12 - 5 = 7. The answer is 7. Then 9 more", "7", "9"),  # strict takes the stated answer, flexible the last
    ("I think it is 42", "", "42"),  # no "The answer is": strict fails, flexible finds it
    ("no number here", "", ""),
    ("The answer is 2.5.", "2.5", "2.5"),  # sentence period after a decimal
    ("The answer is seven.", "", ""),  # words are not numbers
    ("The answer is 3. The answer is 4.", "3", "4"),  # strict takes the first statement
])
def test_strict_and_flexible(text, strict, flexible):
    assert extract("answer_is", text) == strict
    assert extract("last_number", text) == flexible


def test_other_rules():
    assert extract("first_number", "Key: 48213, then 5") == "48213"
    assert extract("leading_number", " 17.\nQuestion: next") == "17"
    assert extract("leading_number", " is 17") == ""
    assert extract("first_line", "\n\n  bakery  \nmore") == "bakery"
    with pytest.raises(ValueError, match="Unknown extraction rule"):
        extract("nope", "x")


def test_stop_truncation_before_extraction():
    out = " 3 + 4 = 7.\nThe answer is 7.\n\nQuestion: Ann has 9 apples"
    cut = truncate_at_stop(out, ["\n\n", "Question:"])
    assert cut == " 3 + 4 = 7.\nThe answer is 7."
    assert extract("last_number", cut) == "7"
    assert extract("last_number", out) == "9"


def test_normalisation_and_exact_match():
    assert normalize_number("1,000.0") == "1000"
    assert normalize_number("0.50") == "0.5"
    assert exact_match("Bakery.", "bakery")
    assert exact_match("5.0", "5")
    assert not exact_match("", "")  # an empty extraction never scores
    assert not exact_match("50", "5")


def test_token_f1():
    assert token_f1("the red house", "Red house") == 1.0
    assert token_f1("red car", "red house") == pytest.approx(0.5)
    assert token_f1("blue", "red") == 0.0


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (57, 100), (1, 1)])
def test_wilson_matches_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_wilson_empty():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_highlight_marks_exactly_the_extracted_span():
    text = "5 + 2 = 7.\nThe answer is 7.\nQuestion: 9"
    parts = highlight_segments(text, "answer_is")
    assert "".join(p for p, _ in parts) == text  # nothing lost or added (plain text, no markup)
    flagged = [(p, i) for i, (p, hit) in enumerate(parts) if hit]
    assert len(flagged) == 1 and flagged[0][0] == "7"
    assert parts[flagged[0][1] - 1][0].endswith("The answer is ")  # the stated answer, not the 7 in "= 7."
    assert highlight_segments("<b>no answer</b>", "answer_is") == [("<b>no answer</b>", False)]
    assert highlight_segments("", "answer_is") == []
