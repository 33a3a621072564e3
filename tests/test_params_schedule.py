"""The parameter model and the schedule (the reference's, exactly, at 50 steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ae_lib.params import FIELDS, AEParams, from_infotext, parse_named, parse_positional, to_infotext
from ae_lib.schedule import Schedule


def test_reference_schedule_at_50_steps():
    s = Schedule.from_params(AEParams(), 50)
    assert [i for i in range(50) if s.plan(i)] == list(range(25))
    assert s.thresholds == {0: 0.05, 10: 0.5, 20: 0.8}
    expected = 20 * np.sqrt(np.linspace(1.0, 0.5, 50))
    assert list(s.step_sizes) == expected.tolist()  # bit-exact, as the reference computes it
    assert s.max_refine == 20


@pytest.mark.parametrize(("n", "until", "refine"), [(20, 10, {0, 4, 8}), (30, 15, {0, 6, 12}), (25, 13, {0, 5, 10})])
def test_schedule_scales_by_fraction(n, until, refine):
    s = Schedule.from_params(AEParams(), n)
    assert s.alter_until == until and set(s.thresholds) == refine
    assert s.step_sizes[0] == 20.0 and s.step_sizes[-1] == pytest.approx(20 * math.sqrt(0.5))


def test_thresholds_past_the_window_are_kept_apart():
    """4 steps: the window is steps 0-1; 0.8 lands on step round(1.6) = 2, past it: never applied, but known."""
    s = Schedule.from_params(AEParams(), 4)
    assert (s.alter_until, s.thresholds, s.past_window) == (2, {0: 0.05, 1: 0.5}, {2: 0.8})
    assert Schedule.from_params(AEParams(), 50).past_window == {}


def test_partial_runs_overlap_the_window():
    s = Schedule.from_params(AEParams(), 40)  # e.g. img2img starting at index 15 of 40
    assert s.altered_steps(start=15) == [15, 16, 17, 18, 19]
    assert s.altered_steps(start=25) == []


def test_labels_and_infotext_keys_are_unique_and_valid():
    import re

    keys = [f.infotext for f in FIELDS if f.infotext]
    assert len(set(keys)) == len(keys)
    assert len({f.label for f in FIELDS}) == len(FIELDS)
    assert all(re.fullmatch(r"\w[\w \-/]+", k) for k in keys)  # what the WebUI's infotext parser accepts
    assert [f.name for f in FIELDS] == list(AEParams.__dataclass_fields__)
    assert all(getattr(AEParams(), f.name) == f.default for f in FIELDS)


def test_positional_and_named_parse_to_the_same_params():
    pos = parse_positional([True, "cat, frog", 0.4, "0:0.1", 15.0, 5, False, 0.7, 16, True, False])
    named = parse_named(
        {"enabled": True, "subjects": "cat, frog", "steps_altered": 0.4, "thresholds": "0:0.1", "step_size": 15,
         "max_refine": 5, "smoothing": False, "sigma": 0.7, "attention_res": 16, "hires": True}
    )
    assert pos.ok and named.ok and pos.params == named.params
    assert parse_positional([{"enabled": True, "subjects": "cat"}]).params.subjects == "cat"
    assert parse_positional([True, "cat"]).params.step_size == 20.0  # missing values keep defaults


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"step_size": float("nan")}, "not a finite number"),
        ({"step_size": -1}, "below the minimum"),
        ({"steps_altered": 1.5}, "above the maximum"),
        ({"max_refine": 2.5}, "whole number"),
        ({"max_refine": "many"}, "expected a number"),
        ({"enabled": "yes"}, "true or false"),
        ({"thresholds": "0.2-0.5"}, "not 'fraction:threshold'"),
        ({"thresholds": "0.2:1.5"}, "must be in 0-1"),
        ({"colour": 1}, "unknown parameter 'colour'"),
    ],
)
def test_bad_values_are_named(values, fragment):
    result = parse_named(values)
    assert not result.ok and any(fragment in e for e in result.errors), result.errors
    assert isinstance(result.params, AEParams)


def test_infotext_round_trip_writes_only_non_defaults():
    params = AEParams(enabled=True, subjects="cat, frog#2", step_size=12.5, smoothing=False)
    info = to_infotext(params)
    assert info == {"AE subjects": "cat, frog#2", "AE step size": "12.5", "AE smoothing": "False"}
    back = from_infotext(info)
    assert back.ok and back.params == params
    assert from_infotext({}).params.enabled is False


def test_empty_thresholds_mean_no_refinement_and_survive_infotext():
    params = AEParams(enabled=True, subjects="cat", thresholds="")
    assert Schedule.from_params(params, 50).thresholds == {}
    info = to_infotext(params)
    assert info["AE thresholds"] == "none"  # an empty value would break the WebUI's infotext parser
    assert from_infotext(info).params.threshold_pairs() == []


def test_objective_and_groups_round_trip_without_subjects():
    params = AEParams(enabled=True, objective="contrast", groups="red car; blue bird")
    info = to_infotext(params)
    assert info == {"AE objective": "contrast", "AE groups": "red car; blue bird"}  # no "none" subjects to paste
    assert from_infotext(info).params == params
    assert from_infotext({"AE groups": "red car"}).params.enabled is False  # not made with A&E's keys alone
