"""The Divide & Bind objective in ae_lib equals the plain reference written from the official code
(tests/reference_divide_bind.py) in fp64 on the tiny UNet: each step's loss, per-subject total variation and
updated latent, with the binding weight of each part of the schedule, through refinement, for a batch whose images
have different targets (one binds attributes from the finer layers, one only spreads its subjects)."""

from __future__ import annotations

import torch

from ae_demo.tiny import make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, Schedule, TokenRule, text_columns
from ae_lib.objectives import ImageTarget, make
from ae_lib.objectives.divide import bind_term, jsd, total_variation
from ae_lib.scores import smooth
from tests.reference_divide_bind import _tv, divide_bind_step, js_divergence, tv_bind_loss

PROMPT = "a red cat and a blue frog"
COLS = tuple(text_columns(prompt_columns(PROMPT), TokenRule.REFERENCE))
BOUND = ImageTarget((3, 7), COLS, ("cat", "frog"), ((2, 3), (6, 7)))  # [red, cat], [blue, frog]
SPREAD = ImageTarget((3, 7), COLS, ("cat", "frog"))  # no attributes: the code's color_indices=None


def test_formulas_equal_the_codes_on_uneven_maps():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 6, 5, generator=g, dtype=torch.float64) ** 4  # peaked, so every term is large
    assert torch.allclose(total_variation(maps), torch.stack([_tv(m) for m in maps]), rtol=0, atol=1e-15)
    p, q = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(30, generator=g, dtype=torch.float64)
    assert abs(float(jsd(p, q)) - float(js_divergence(p, q))) <= 1e-15
    # bind_term against the reference's whole tv_bind loss for one subject with one attribute, at both quantiles
    for scale in (1.0, 0.01):  # TV above and below 0.1
        att = torch.rand(30, 77, generator=g, dtype=torch.float64) * scale
        fine = torch.rand(30, 77, generator=g, dtype=torch.float64) * scale
        text = (att[:, 1:-1] * 100).softmax(-1)[:, 4].reshape(6, 5)
        colour = (fine[:, 1:-1] * 100).softmax(-1)[:, 2].reshape(6, 5)
        ref, _, ref_tv = tv_bind_loss(att.reshape(6, 5, 77), fine.reshape(6, 5, 77), [5], [3], step=12)
        assert abs(float(total_variation(smooth(text[None], 0.5))[0]) - float(ref_tv[0])) <= 1e-15
        s, c = smooth(text[None], 0.5)[0], smooth(colour[None], 0.5)[0]
        tv = total_variation(s[None])[0]
        assert abs(float(-tv + 5.0 * bind_term(s, c, tv)) - float(ref)) <= 1e-14, scale
        assert scale != 1.0 or float(bind_term(s, c, tv)) > 1e-4  # the check sees the binding term, not only TV


def _engine(unet, **values):
    params = AEParams(enabled=True, subjects="x", **values)
    return AttendExcite(unet, params, Schedule.from_params(params, 50), objective=make("divide", params))


def test_steps_match_the_reference_with_binding_weights_and_refinement(unet64):
    engine = _engine(unet64, step_size=2000.0, max_refine=3, thresholds="0:0.9, 0.2:0.9")  # never met: 3 iterations
    ctx = make_context(2).double()

    def run(z, rows):
        return unet64(z, torch.full((z.shape[0],), 500.0), context=ctx[rows])

    z = torch.randn(2, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ref = [z[0:1], z[1:2]]
    colours = ([2, 6], None)
    for index in (0, 1, 10, 20):  # weights 1, 1, 5, 10; refinement at 0 and 10
        result = engine.step(index, z, run, [BOUND, SPREAD])
        refine = 3 if index in (0, 10) else 0
        for b in (0, 1):
            ref[b], loss, tvs, iterations = divide_bind_step(
                unet64, ref[b], 500.0, ctx[b : b + 1], [3, 7], colours[b], 4, index,
                engine.schedule.step_sizes[index], 0.9 if refine else None, max_refine=3, max_refine_first=3)
            assert iterations == refine == result.refine_iterations.get(b, 0)
            assert abs(result.losses[b] - loss) <= 1e-10, (index, b)
            assert max(abs(x - y) for x, y in zip(result.scores[b], tvs, strict=True)) <= 1e-10, (index, b)
            assert float((result.latent[b] - ref[b][0]).abs().max()) <= 1e-10, (index, b)
        assert not torch.equal(result.latent, z), "the step must move the latent"
        z = result.latent


def test_binding_changes_the_update(unet64):
    """The attribute maps reach the gradient: the same step with and without groups moves the latent apart."""
    ctx = make_context(1).double()

    def run(z, rows):
        return unet64(z, torch.full((z.shape[0],), 500.0), context=ctx[rows])

    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    bound = _engine(unet64, step_size=2000.0, thresholds="none").step(20, z, run, [BOUND])
    spread = _engine(unet64, step_size=2000.0, thresholds="none").step(20, z, run, [SPREAD])
    assert bound.scores == spread.scores  # the same TV at the same latent
    assert float((bound.latent - spread.latent).abs().max()) > 1e-9


def test_the_weakest_total_variation_rises(unet64):
    ctx = make_context(1).double()

    def run(z, rows):
        return unet64(z, torch.full((z.shape[0],), 500.0), context=ctx[rows])

    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    engine = _engine(unet64, step_size=2000.0, thresholds="none")
    first = engine.step(1, z, run, [BOUND])
    second = engine.step(2, first.latent, run, [BOUND])  # its scores: at the latent after the first update
    assert min(second.scores[0]) > min(first.scores[0])
