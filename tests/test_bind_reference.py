"""The Bind objective (SynGen) in ae_lib equals the plain reference written from the official code
(tests/reference_syngen.py) in fp64 on the tiny UNet: each step's loss and updated latent, with split words on
both sides of a pair, two attributes on one subject, the constant step size and no refinement at the paper's
refinement steps."""

from __future__ import annotations

import pytest
import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, Schedule, TokenRule
from ae_lib.objectives import make
from ae_lib.objectives.bind import symmetric_kl
from ae_lib.targets import build_target
from tests.reference_syngen import attribution_loss, sym_kl, syngen_step

PROMPT = "a glittery chartreuse iguana and a teal capybara, on grass"
GROUPS = "glittery chartreuse iguana; teal capybara"
# The official code's aligned subtrees for these pairs: split words as lists of their pieces, the noun last.
SUBTREES = [[[2, 3], [4, 5, 6], [7, 8]], [11, [12, 13, 14]]]
PROMPT_TOKENS = 17  # a glit tery char tre use igu ana and a teal cap y bara , on grass


def _target():
    found = build_target(prompt_columns(PROMPT), "", GROUPS, TokenRule.REFERENCE, "bind")
    assert found.ok, found.message()
    return found.target


def test_symmetric_kl_equals_torch_distributions_zeros_included():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 64, generator=g, dtype=torch.float64)
    maps[1, :7] = 0  # a cell a map gives nothing: infinite divergence one way, as Categorical's
    p = maps / maps.sum(1, keepdim=True)
    ours = symmetric_kl(p, p)
    for a in range(5):
        for b in range(5):
            ref = float(sym_kl(maps[a] * 100, maps[b] * 100))
            assert float(ours[a, b]) == ref or abs(float(ours[a, b]) - ref) <= 1e-12, (a, b)
    assert torch.isinf(ours[1, 0]) and ours[1, 1] == 0


def test_steps_match_the_reference_with_constant_step_size_and_no_refinement(unet64):
    params = AEParams(enabled=True, objective="bind", step_size=150.0)
    engine = AttendExcite(unet64, params, Schedule.from_params(params, 50), objective=make("bind", params))
    ctx = make_context(1).double()
    run = cond_runner(unet64, ctx)
    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ref_z = z
    for index in (0, 1, 10, 24):  # 0 and 10 are A&E's refinement steps; 24 the last altered one
        result = engine.step(index, z, run, [_target()])
        ref_z, ref_loss = syngen_step(unet64, ref_z, 500.0, ctx, SUBTREES, PROMPT_TOKENS, (4, 4), 150.0)
        assert result.passes == 1 and not result.refine_iterations
        assert abs(result.losses[0] - ref_loss) <= 1e-10, index
        assert float((result.latent - ref_z).abs().max()) <= 1e-10, index
        assert not torch.equal(result.latent, z), "the step must move the latent"
        z = result.latent
    assert engine.step(25, z, run, [_target()]) is None  # the window: steps_altered 0.5 of 50 = the code's 25


def test_measure_is_each_tokens_pair_divergence(unet64):
    params = AEParams(enabled=True, objective="bind")
    engine = AttendExcite(unet64, params, Schedule.from_params(params, 50), objective=make("bind", params))
    run = cond_runner(unet64, make_context(1).double())
    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    engine.keep_maps = True
    result = engine.step(3, z, run, [_target()])
    maps = result.maps[0] * 100
    glittery, chartreuse, iguana, teal, capybara = result.scores[0]
    pair = {  # D(attribute, subject): the max over the pieces of both words
        "glittery": max(sym_kl(maps[:, a], maps[:, b]) for a in (2, 3) for b in (7, 8)),
        "chartreuse": max(sym_kl(maps[:, a], maps[:, b]) for a in (4, 5, 6) for b in (7, 8)),
        "teal": max(sym_kl(maps[:, 11], maps[:, b]) for b in (12, 13, 14)),
    }
    assert glittery == pytest.approx(float(pair["glittery"]), abs=1e-12)
    assert chartreuse == pytest.approx(float(pair["chartreuse"]), abs=1e-12)
    assert iguana == pytest.approx((glittery + chartreuse) / 2, abs=1e-12)
    assert teal == pytest.approx(float(pair["teal"]), abs=1e-12) and capybara == pytest.approx(teal, abs=1e-12)
    assert engine.objective.maps(result.maps[0], _target(), (4, 4)).shape == (5, 4, 4)
    assert not engine.objective.reports_thresholds and engine.objective.measure.startswith("pair divergence")


def test_pair_divergence_falls_over_the_window(unet64):
    params = AEParams(enabled=True, objective="bind", step_size=150.0)
    engine = AttendExcite(unet64, params, Schedule.from_params(params, 50), objective=make("bind", params))
    run = cond_runner(unet64, make_context(1).double())
    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    first = engine.step(0, z, run, [_target()])
    z = first.latent
    for index in range(1, 8):
        z = engine.step(index, z, run, [_target()]).latent
    last = engine.step(8, z, run, [_target()])
    assert last.losses[0] < first.losses[0]
    assert sum(last.scores[0]) < sum(first.scores[0])



@pytest.mark.parametrize(
    ("prompt", "groups", "subtrees", "tokens"),
    [
        ("red car", "red car", [[1, 2]], 2),  # no other prompt word: no negative term
        (PROMPT, GROUPS, SUBTREES, PROMPT_TOKENS),
        (PROMPT, "2 8; teal capybara", [[2, [7, 8]], [11, [12, 13, 14]]], PROMPT_TOKENS),  # 2: one piece by index
    ],
)
def test_loss_on_given_maps_equals_the_reference(prompt, groups, subtrees, tokens):
    found = build_target(prompt_columns(prompt), "", groups, TokenRule.REFERENCE, "bind")
    assert found.ok, found.message()
    attention = torch.rand(64, 77, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).softmax(-1)
    loss, _ = make("bind", AEParams()).image_loss(0, attention, found.target, (8, 8))
    maps = [m for m in (attention * 100).reshape(8, 8, 77).permute(2, 0, 1)]
    assert abs(float(loss) - float(attribution_loss(maps, subtrees, tokens))) <= 1e-12
