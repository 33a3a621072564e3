"""Sampler names -> call rules: every listed name is known or refused with the reason; unknown names refused."""

from __future__ import annotations

import pytest

from ae_lib.steps import CallRule, calls_per_step, step_of_call
from ae_webui import sampler_steps


def _main_calls(rule: CallRule, run_steps: int, calls: int) -> list[int | None]:
    return [step_of_call(rule, c, run_steps) for c in range(calls)]


def test_rules_pick_the_first_call_of_each_step():
    assert _main_calls(CallRule.SINGLE, 3, 3) == [0, 1, 2]
    assert _main_calls(CallRule.PAIRED, 3, 5) == [0, None, 1, None, 2]
    assert _main_calls(CallRule.PLMS, 3, 4) == [0, None, 1, 2]
    assert _main_calls(CallRule.TRIPLE, 3, 6) == [0, None, None, 1, None, 2]
    # Kohaku LoNyu Yog with 4 steps: i <= 2 make three calls, i = 3 one (sample_Kohaku_LoNyu_Yog)
    assert calls_per_step(CallRule.EARLY_TRIPLE, 4) == [3, 3, 3, 1]
    assert _main_calls(CallRule.EARLY_TRIPLE, 4, 10) == [0, None, None, 1, None, None, 2, None, None, 3]


@pytest.mark.parametrize(("name", "rule"), [
    ("Euler", CallRule.SINGLE), ("DPM++ 2M Karras", CallRule.SINGLE), ("DPM2 a Karras", CallRule.PAIRED),
    ("DPM++ 2M SDE Heun Exponential", CallRule.SINGLE), ("HeunPP2", CallRule.TRIPLE),
    ("Kohaku LoNyu Yog", CallRule.EARLY_TRIPLE), ("Euler A Turbo", CallRule.SINGLE), ("LCM Karras", CallRule.SINGLE),
    ("Euler A SGMUniform", CallRule.SINGLE), ("DDPM Karras", CallRule.SINGLE),
])
def test_known_names(name, rule):
    assert sampler_steps.rule(name) is rule and sampler_steps.refusal(name) is None


@pytest.mark.parametrize("name", ["UniPC", "DPM fast", "Restart", "Restart Karras", "DPM++ 2s a RF"])
def test_refused_names_say_why(name):
    message = sampler_steps.refusal(name)
    assert message and f"'{name}'" in message and "Use e.g. Euler" in message


def test_a_name_nobody_listed_is_refused_by_name_not_assumed_single_call():
    message = sampler_steps.refusal("Brand New Sampler")
    assert "'Brand New Sampler'" in message and "model calls per step" in message
    assert sampler_steps.step_of_call("Brand New Sampler", 0) is None
    assert sampler_steps.refusal("Brand New Sampler Karras") is not None
