"""The objective seam: the engine asks its objective for the loss, the refinement goal and the report, and an
objective with a fixed iteration count and state across steps runs through the same engine."""

from __future__ import annotations

import pytest
import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, AttentionCapture, Schedule, TokenRule, text_columns
from ae_lib.objectives import DEFAULT, OBJECTIVES, ImageTarget, Objective, make
from ae_lib.objectives.excite import Excite
from ae_lib.scores import subject_maps
from ae_lib.window import ImageWindow, end_of_window_lines

COLS = tuple(text_columns(prompt_columns("a cat and a frog"), TokenRule.REFERENCE))
TARGET = ImageTarget((2, 5), COLS, ("cat", "frog"))


class MeanMap(Objective):
    """A test objective: maximise each subject's mean attention; 3 refinement iterations wherever the schedule
    refines, no goal; remembers each step's maps (as CONFORM's previous-step view will)."""

    name = "mean-map"
    keeps_state = True

    def __init__(self, params: AEParams) -> None:
        super().__init__(params)
        self.seen: list[tuple[int, dict[int, torch.Tensor]]] = []

    def image_loss(self, image, attention, target, grid):
        means = subject_maps(attention, target.text_columns, target.subjects, grid).flatten(1).mean(1)
        return -means.sum(), means

    def refine_limit(self, plan):
        return 3 if plan.threshold is not None else 0

    def step_done(self, index, attention):
        self.seen.append((index, dict(attention)))


def _engine(unet, objective=None, **values):
    params = AEParams(enabled=True, subjects="x", **values)
    obj = objective(params) if objective else None
    return AttendExcite(unet, params, Schedule.from_params(params, 50), AttentionCapture(unet), objective=obj)


def test_registry_gives_the_paper_objective_by_default():
    assert DEFAULT == "excite" and OBJECTIVES["excite"] is Excite
    assert isinstance(make(None, AEParams()), Excite)
    with pytest.raises(ValueError, match="unknown objective 'nope' \\(known: excite"):
        make("nope", AEParams())


def test_engine_runs_another_objective_with_fixed_refinement_and_state(sd1_unet):
    engine = _engine(sd1_unet, MeanMap)
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    run = cond_runner(sd1_unet, make_context(2))
    result = engine.step(0, z, run, [TARGET, None])  # step 0 refines (threshold 0.05 at fraction 0)
    assert result.refine_iterations == {0: 3} and result.threshold_met == {0: False}
    assert result.passes == 4  # the first pass, then one per iteration
    assert len(result.scores[0]) == 2 and result.losses[0] == pytest.approx(-sum(result.scores[0]))
    assert not torch.equal(result.latent[0], z[0]) and torch.equal(result.latent[1], z[1])
    (index, maps), = engine.objective.seen
    assert index == 0 and set(maps) == {0} and maps[0].shape == (16, 77) and not maps[0].requires_grad
    engine.step(1, z, run, [TARGET, None])  # no refinement at step 1
    assert [i for i, _ in engine.objective.seen] == [0, 1]


def test_default_objective_reports_thresholds_and_a_goalless_one_reports_scores():
    assert Excite(AEParams()).below([0.9, 0.4], Schedule.from_params(AEParams(), 50).plan(10)) == [False, True]
    schedule = Schedule.from_params(AEParams(enabled=True, subjects="x"), 50)
    images = {0: ImageWindow(("cat", "frog"), [0.9, 0.5])}
    (line,) = end_of_window_lines(images, schedule)
    assert line.startswith("A&E image 1: cat 0.90, frog 0.50; thresholds: 0.05 at step 0 not run")
    goalless = end_of_window_lines(images, schedule, MeanMap(AEParams()))
    assert goalless == ["A&E image 1: cat 0.90, frog 0.50"]
