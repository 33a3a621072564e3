"""Divide & Bind around its loss: its thresholds, limits and binding weights over the schedule, its subjects and
attributes from the groups, the grids it asks the capture for, and the capture keeping further grids in one pass."""

from __future__ import annotations

import logging

import pytest
import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, AttentionCapture, Schedule, StepDriver, TokenRule
from ae_lib.capture import find_cross_attention
from ae_lib.objectives import OBJECTIVES, ImageTarget, make
from ae_lib.objectives.divide import Divide, attributes_of, downsampled_mean
from ae_lib.params import SPECS
from ae_lib.report import ThresholdOutcome
from ae_lib.targets import build_target

TOKENS = prompt_columns("a red cat and a blue frog")


def _plans(**values):
    params = AEParams(enabled=True, subjects="x", **values)
    schedule = Schedule.from_params(params, 50)
    return make("divide", params), schedule


def test_registered_and_offered():
    assert OBJECTIVES["divide"] is Divide and "divide" in SPECS["objective"].choices
    assert Divide.measure == "total variation" and Divide.takes_groups and Divide.needs_pairs
    assert not Divide.needs_groups  # without attributes it is the code's attendance alone (color_indices=None)


def test_the_codes_thresholds_and_limits_at_the_default_fields():
    objective, schedule = _plans()
    plans = {i: schedule.plan(i) for i in (0, 5, 10, 20)}
    assert [objective.threshold(plans[i]) for i in (0, 5, 10, 20)] == [0.05, None, 0.2, 0.3]
    assert [objective.refine_limit(plans[i]) for i in (0, 5, 10, 20)] == [100, 0, 50, 50]
    assert not objective.goal_met(-0.1, [0.25, 0.19], plans[10]) and objective.goal_met(-0.1, [0.25, 0.2], plans[10])
    assert objective.below([0.25, 0.19], plans[10]) == [False, True]
    assert objective.goal_met(0.0, [float("nan"), 0.0], plans[10])  # the code's min is NaN: nothing to refine


def test_the_users_thresholds_and_limit_are_total_variations():
    objective, schedule = _plans(thresholds="0:0.4, 0.3:0.6", max_refine=7)
    assert objective.threshold(schedule.plan(0)) == 0.4 and objective.threshold(schedule.plan(15)) == 0.6
    assert objective.refine_limit(schedule.plan(0)) == 7 and objective.refine_limit(schedule.plan(15)) == 7
    objective, schedule = _plans(thresholds="none")
    assert objective.refine_limit(schedule.plan(0)) == 0
    objective, schedule = _plans(max_refine=0)
    assert objective.refine_limit(schedule.plan(0)) == 0


@pytest.mark.parametrize(("total", "weights"), [(50, {0: 1, 9: 1, 10: 5, 19: 5, 20: 10, 24: 10}),
                                                (20, {0: 1, 3: 1, 4: 5, 7: 5, 8: 10, 9: 10})])
def test_binding_weight_follows_the_schedule(total, weights):
    objective, _ = _plans()
    schedule = Schedule.from_params(objective.params, total)
    for index, weight in weights.items():
        objective.begin_step(schedule.plan(index), total)
        assert objective.weight == weight, (total, index)


def test_groups_give_subjects_and_their_attributes():
    found = build_target(TOKENS, "", "red cat; blue frog", TokenRule.REFERENCE, "divide")
    assert found.ok and found.target.subjects == (3, 7) and found.target.labels == ("cat", "frog")
    assert attributes_of(found.target) == {3: (2,), 7: (6,)}
    named = build_target(TOKENS, "cat, frog", "blue frog", TokenRule.REFERENCE, "divide")
    assert named.ok and named.target.subjects == (3, 7) and attributes_of(named.target) == {7: (6,)}
    alone = build_target(TOKENS, "", "cat", TokenRule.REFERENCE, "divide")
    assert not alone.ok and "no attribute with its subject" in alone.message()
    plain = build_target(TOKENS, "cat, frog", "", TokenRule.REFERENCE, "divide")
    assert plain.ok and attributes_of(plain.target) == {}


def test_finer_grids_only_when_something_binds():
    objective, _ = _plans()
    bound = ImageTarget((3,), (1, 2, 3), ("cat",), ((2, 3),))
    spread = ImageTarget((3,), (1, 2, 3), ("cat",))
    assert objective.finer_grids((16, 16), (4, 4), [spread, None]) == ()
    assert objective.finer_grids((16, 16), (4, 4), [spread, bound]) == ((16, 16), (8, 8))
    assert objective.finer_grids((64, 96), (16, 24), [bound]) == ((64, 96), (32, 48))


def test_no_finer_layer_is_a_clear_error():
    with pytest.raises(RuntimeError, match="finer than the loss grid"):
        downsampled_mean({}, (4, 4))


def test_downsampling_is_nearest_over_all_heads():
    a = torch.arange(16 * 3, dtype=torch.float64).reshape(16, 3)  # a 4x4 grid, 3 keys, 2 heads summed
    b = torch.ones(64, 3, dtype=torch.float64)  # an 8x8 grid, 6 heads summed
    out = downsampled_mean({(4, 4): (a, 2), (8, 8): (b, 6)}, (2, 2))
    picked = a.reshape(4, 4, 3)[::2, ::2].reshape(4, 3)  # nearest to 2x2 keeps rows/columns 0 and 2
    torch.testing.assert_close(out, (picked + 1) / 8)


def test_capture_keeps_further_grids_and_stops_after_the_last(sd1_unet):
    capture = AttentionCapture(sd1_unet)
    names = [n for n, _ in find_cross_attention(sd1_unet)]
    ran: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda *a, n=n: ran.append(n)) for n, m in find_cross_attention(sd1_unet)]

    def record(*also):
        ran.clear()
        with capture.recording(16, also=also) as rec:
            sd1_unet(torch.randn(1, 4, 16, 16), torch.full((1,), 10.0), context=make_context(1))
        return rec

    try:
        first = record(64)  # the 8x8 grid besides the 4x4 one: the first pass runs to the end, learning the count
        assert ran == names
        second = record(64)
        assert ran == names[: names.index(second.also[64].layers[-1]) + 1] != names  # stopped after the last 8x8
        for rec in (first, second):
            assert len(rec.layers) == 5 and len(rec.also[64].layers) == 5 and rec.also[64].heads == 5 * 2
            assert rec.also[64].prob_sum.shape == (1, 64, 77)
        torch.testing.assert_close(first.mean().shape, second.mean().shape)
        both = record(256, 64)
        assert [len(both.also[q].layers) for q in (256, 64)] == [5, 5] and ran == names
        record()
        paper = record()  # the paper's pass: the target grid alone, stopped after its last layer as before
        assert paper.also == {} and ran == names[: names.index(paper.layers[-1]) + 1]
    finally:
        for h in hooks:
            h.remove()


def test_a_run_through_the_step_driver_records_each_subject(sd1_unet, caplog):
    """10 steps (window 0-4), refinement at step 0 with a TV goal it cannot reach: the window record holds each
    subject's TV and map, and which subjects stayed below; the end-of-window line gives the TVs."""
    params = AEParams(enabled=True, objective="divide", groups="red cat; blue frog", thresholds="0:0.9", max_refine=2)
    driver = StepDriver(sd1_unet, params, 10, print, "", keep_maps=True, objective="divide")
    target = build_target(TOKENS, "", params.groups, TokenRule.REFERENCE, "divide").target
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    with caplog.at_level(logging.INFO, logger="attend_and_excite"):
        for index in range(10):
            driver.step(index, x, None, cond_runner(sd1_unet, make_context(1)), [target])
    assert driver.altered == [0, 1, 2, 3, 4] and driver.refined == {0: 2}
    image = driver.images[0]
    assert image.labels == ("cat", "frog") and len(image.scores) == 2 and all(0 < s < 0.9 for s in image.scores)
    assert image.first_maps.shape == image.last_maps.shape == (2, 4, 4)
    assert image.thresholds[0] == ThresholdOutcome(False, 2, ("cat", "frog"))
    line = next(r.message for r in caplog.records if r.message.startswith("A&E image 1:"))
    assert line.startswith("A&E image 1: cat ") and "frog" in line


def test_checkpointed_blocks_give_the_same_step(sd1_unet):
    """The finer grids are kept through gradient checkpointing as the loss grid is (ae_lib.memory)."""
    params = AEParams(enabled=True, objective="divide", thresholds="none", step_size=200.0)
    target = build_target(TOKENS, "", "red cat; blue frog", TokenRule.REFERENCE, "divide").target
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(8))
    run = cond_runner(sd1_unet, make_context(1))
    steps = [AttendExcite(sd1_unet, params, Schedule.from_params(params, 50), checkpoint=ckpt,
                          objective=make("divide", params)).step(3, z, run, [target]) for ckpt in (False, True)]
    assert not torch.equal(steps[0].latent, z)
    torch.testing.assert_close(steps[1].latent, steps[0].latent, rtol=0, atol=1e-6)
    assert steps[1].losses == pytest.approx(steps[0].losses, abs=1e-7)


def test_a_group_whose_subject_is_not_a_named_subject_is_refused_by_name():
    """divide binds a group's attributes to its subject's map: a subject left out of Subjects would bind nothing."""
    from ae_lib.targets import build_target
    from ae_lib.tokens import TokenColumn, TokenRule

    words = ["a", "red", "car", "and", "a", "blue", "bird"]
    tokens = [TokenColumn(0, 49406, "", "start")] + [TokenColumn(i + 1, 100 + i, w) for i, w in enumerate(words)]
    found = build_target(tokens, "car", "red car; blue bird", TokenRule.REFERENCE, "divide")
    assert found.target is None
    assert found.errors == ["group 'blue bird': its subject 'bird' is not among the Subjects (car); add it there or "
                            "clear Subjects"]
    assert build_target(tokens, "car, bird", "red car; blue bird", TokenRule.REFERENCE, "divide").ok
    assert build_target(tokens, "", "red car; blue bird", TokenRule.REFERENCE, "divide").target.subjects == (3, 7)
