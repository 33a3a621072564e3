"""The Contrast objective (CONFORM) in ae_lib equals the plain reference written from the official code
(tests/reference_conform.py) in fp64 on the tiny UNet: each step's loss and updated latent, across steps (the
previous step's maps) and through refinement."""

from __future__ import annotations

import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, Schedule, TokenRule, text_columns
from ae_lib.objectives import ImageTarget, make
from ae_lib.objectives.contrast import nt_xent
from tests.reference_conform import conform_step, ntxent_pml

PROMPT = "a red cat and a blue frog"
GROUPS = ((2, 3), (6, 7))  # [red, cat], [blue, frog]


def _target():
    cols = tuple(text_columns(prompt_columns(PROMPT), TokenRule.REFERENCE))
    subjects = tuple(c for g in GROUPS for c in g)
    return ImageTarget(subjects, cols, ("red", "cat", "blue", "frog"), GROUPS)


def test_nt_xent_equals_pytorch_metric_learning_pair_by_pair():
    g = torch.Generator().manual_seed(0)
    for labels in ([0, 0, 1, 1], [0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2], [0, 0, 0]):
        emb = torch.rand(len(labels), 16, generator=g, dtype=torch.float64)
        ours = nt_xent(emb, torch.tensor(labels))
        ref = ntxent_pml(emb, torch.tensor(labels), 0.5)
        assert abs(float(ours) - float(ref)) <= 1e-12, labels


def test_steps_with_previous_maps_and_refinement_match_the_reference(unet64):
    params = AEParams(enabled=True, subjects="x", step_size=2000.0, max_refine=3)
    engine = AttendExcite(unet64, params, Schedule.from_params(params, 50), objective=make("contrast", params))
    ctx = make_context(1).double()
    run = cond_runner(unet64, ctx)
    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ref_z, previous = z, None
    groups = [list(g) for g in GROUPS]
    for index in (0, 1, 9, 10):  # refinement at 0 (no previous maps yet) and at 10 (with them)
        result = engine.step(index, z, run, [_target()])
        refine = params.max_refine if index in engine.schedule.thresholds else 0
        ref_z, ref_loss, previous = conform_step(unet64, ref_z, 500.0, ctx, groups, (4, 4),
                                                 engine.schedule.step_sizes[index], previous, refine)
        assert result.refine_iterations.get(0, 0) == refine
        assert abs(result.losses[0] - ref_loss) <= 1e-10, index
        assert float((result.latent - ref_z).abs().max()) <= 1e-10, index
        assert not torch.equal(result.latent, z), "the step must move the latent"
        z = result.latent


def test_separation_is_reported_per_token(unet64):
    params = AEParams(enabled=True, subjects="x", thresholds="none")
    engine = AttendExcite(unet64, params, Schedule.from_params(params, 50), objective=make("contrast", params))
    run = cond_runner(unet64, make_context(1).double())
    result = engine.step(3, torch.randn(1, 4, 16, 16, dtype=torch.float64), run, [_target()])
    scores = result.scores[0]
    assert len(scores) == 4 and all(-2.0 <= s <= 2.0 for s in scores)
    assert not engine.objective.reports_thresholds and engine.objective.below(scores, engine.schedule.plan(0)) is None
