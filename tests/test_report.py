from __future__ import annotations

import json
import math

import pytest

from ae_lib.report import ThresholdOutcome, format_scores, parse_scores, thresholds_report, window_summary


def _infotext_quote(text: str) -> str:
    # modules/infotext_utils.py:quote — JSON-quote values with ",", ":" or a newline.
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def _infotext_unquote(text: str) -> str:
    # modules/infotext_utils.py:unquote
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_format_two_decimals_in_subject_order():
    assert format_scores(["cat", "frog"], [0.9149, 0.8351]) == "cat 0.91, frog 0.84"


def test_format_empty_is_empty():
    assert format_scores([], []) == ""
    assert parse_scores("") == []


def test_format_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 labels but 1 scores"):
        format_scores(["cat", "frog"], [0.5])


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        (["cat", "frog"], [0.91, 0.84]),
        (["frog", "frog"], [0.12, 1.0]),  # "frog, frog#2": both labels are "frog"
        ([",", "cat"], [0.5, 0.25]),  # a column picked by index can be punctuation
        (["5", "0.5"], [0.33, 0.75]),  # labels that look like numbers
        (["cat"], [0.0]),
    ],
)
def test_round_trip_through_infotext_quoting(labels, scores):
    text = format_scores(labels, scores)
    stored = _infotext_quote(text)
    assert stored.startswith('"') == ("," in text)
    parsed = parse_scores(_infotext_unquote(stored))
    assert [label for label, _ in parsed] == labels
    assert [score for _, score in parsed] == pytest.approx(scores, abs=0.005)


def test_whitespace_and_empty_labels_survive_the_round_trip():
    text = format_scores(["hot dog", ""], [0.5, 0.25])
    assert text == "hot_dog 0.50, ? 0.25"
    assert parse_scores(text) == [("hot_dog", 0.5), ("?", 0.25)]


def test_non_finite_scores_round_trip():
    parsed = parse_scores(format_scores(["cat", "frog"], [math.nan, -math.inf]))
    assert parsed[0][0] == "cat"
    assert math.isnan(parsed[0][1])
    assert parsed[1] == ("frog", -math.inf)


@pytest.mark.parametrize("text", ["cat", "cat 0.5 frog", "cat 0.5x", "0.5", "cat, frog"])
def test_parse_rejects_text_that_is_not_a_scores_list(text):
    assert parse_scores(text) == []


def test_parse_is_lenient_about_spacing():
    assert parse_scores("  cat 0.9 ,frog   0.8  ") == [("cat", 0.9), ("frog", 0.8)]


def test_summary_all_met():
    line = window_summary(0, ["cat", "frog"], [0.91, 0.84], [True, True])
    assert line == "A&E image 0: cat 0.91, frog 0.84; all thresholds met"


def test_summary_names_the_subjects_below_threshold():
    line = window_summary(3, ["cat", "frog"], [0.91, 0.42], [True, False])
    assert line == "A&E image 3: cat 0.91, frog 0.42; below threshold: frog"


def test_summary_with_one_flag_per_image():
    assert window_summary(1, ["cat"], [0.2], False).endswith("; thresholds not met")
    assert window_summary(1, ["cat"], [0.9], True).endswith("; all thresholds met")


def test_summary_rejects_mismatched_flags():
    with pytest.raises(ValueError, match="threshold flags"):
        window_summary(0, ["cat", "frog"], [0.1, 0.2], [True])


def test_thresholds_report_says_which_applied_and_whether_each_was_met():
    planned = {0: 0.05, 1: 0.5}
    outcomes = {0: ThresholdOutcome(True, 0), 1: ThresholdOutcome(False, 20, ("frog",))}
    assert thresholds_report(planned, outcomes, {2: 0.8}, 2, 20) == (
        "thresholds: 0.05 at step 0 met; 0.5 at step 1 not met after 20 iterations (frog below); "
        "0.8 at step 2 not applied (past the window, steps 0-1)")
    assert thresholds_report(planned, {0: ThresholdOutcome(True, 1)}, {}, 2, 20) == (
        "thresholds: 0.05 at step 0 met after 1 iteration; 0.5 at step 1 not run")
    past_only = thresholds_report({}, {}, {2: 0.9}, 2, 20)
    assert past_only == "thresholds: 0.9 at step 2 not applied (past the window, steps 0-1)"
    assert thresholds_report(planned, {}, {}, 2, 0) == "thresholds not applied (max refinement iterations is 0)"
    assert thresholds_report({}, {}, {}, 2, 20) == "no thresholds"


def test_a_negative_zero_is_written_as_zero():
    """A measure that can be negative (contrast's separation) rounds tiny negatives to 0.00, not -0.00."""
    assert format_scores(["red", "car"], [-0.001, -0.5]) == "red 0.00, car -0.50"


def test_measures_far_below_one_keep_three_significant_digits_and_parse_back():
    """An objective's measure (e.g. divide's total variation ~5e-4) must not read 0.00 in the info."""
    text = format_scores(["cat", "frog", "dog"], [0.000523, -0.0361, 1.5e-5], significant=3)
    assert text == "cat 0.000523, frog -0.0361, dog 1.50e-05"
    assert parse_scores(text) == [("cat", 0.000523), ("frog", -0.0361), ("dog", 1.5e-05)]
    assert format_scores(["cat"], [0.914]) == "cat 0.91"  # the paper's scores keep two decimals
