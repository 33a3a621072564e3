"""Engine behaviour: gradients, truncation, batches, refinement per image, clean model afterwards."""

from __future__ import annotations

import copy

import pytest
import torch
from ldm.modules import attention as ldm_attention
from ldm.modules.diffusionmodules import util as ldm_util

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, AttentionCapture, ImageTarget, Schedule, TokenRule, text_columns
from ae_lib.capture import target_grid

COLS = tuple(text_columns(prompt_columns("a cat and a frog"), TokenRule.REFERENCE))


def _target(subjects=(2, 5)):
    return ImageTarget(tuple(subjects), COLS)


def _engine(unet, truncate=True, **values):
    params = AEParams(enabled=True, subjects="x", **values)
    return AttendExcite(unet, params, Schedule.from_params(params, 50), AttentionCapture(unet, truncate=truncate))


def test_gradient_matches_finite_differences(sd1_unet, monkeypatch):
    monkeypatch.setattr(ldm_util.GroupNorm32, "forward", torch.nn.GroupNorm.forward)  # it casts to fp32
    monkeypatch.setattr(ldm_attention, "_ATTN_PRECISION", "fp64")  # so does ldm's attention by default
    unet = copy.deepcopy(sd1_unet).double()
    unet.dtype = torch.float64  # ldm casts the input to this
    unet.time_embed.register_forward_pre_hook(lambda m, a: (a[0].double(),))  # ldm embeds timesteps in fp32
    engine = _engine(unet, smoothing=True)
    z = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ctx = make_context(1).double()
    run = cond_runner(unet, ctx)
    grid = target_grid((16, 16))
    ev = engine.evaluate(z, [0], run, [_target()], grid)
    direction = torch.randn_like(z)
    eps = 1e-6
    plus = engine.evaluate(z + eps * direction, [0], run, [_target()], grid).losses[0]
    minus = engine.evaluate(z - eps * direction, [0], run, [_target()], grid).losses[0]
    numeric = (plus - minus) / (2 * eps)
    analytic = float((ev.grads[0] * direction[0]).sum())
    assert ev.losses[0] > 0
    assert analytic == pytest.approx(numeric, rel=1e-5)


def test_truncated_and_full_pass_give_identical_gradients(sd1_unet):
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    ctx = make_context(2)
    grid = target_grid((16, 16))
    targets = [_target(), _target((5,))]
    full = _engine(sd1_unet, truncate=False).evaluate(z, [0, 1], cond_runner(sd1_unet, ctx), targets, grid)
    truncated_engine = _engine(sd1_unet, truncate=True)
    for _ in range(2):  # first pass stops at the first finer layer, later ones right after the last target layer
        cut = truncated_engine.evaluate(z, [0, 1], cond_runner(sd1_unet, ctx), targets, grid)
        assert torch.equal(cut.grads, full.grads)
        assert cut.losses == full.losses


def test_pass_stops_after_last_target_layer(sd1_unet):
    ran = []
    handles = [
        m.register_forward_pre_hook(lambda mod, a, n=i: ran.append(n)) for i, m in enumerate(sd1_unet.output_blocks)
    ]
    try:
        engine = _engine(sd1_unet)
        z = torch.randn(1, 4, 16, 16)
        for _ in range(2):
            ran.clear()
            engine.evaluate(z, [0], cond_runner(sd1_unet, make_context(1)), [_target()], (4, 4))
    finally:
        for h in handles:
            h.remove()
    assert ran == [0, 1, 2, 3, 4, 5], "output_blocks.5 holds the last 16-query layer; nothing after it may run"


def test_batch_of_three_equals_each_image_alone(sd1_unet):
    z = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    ctx = make_context(3, seed=7)
    targets = [_target((2, 5)), _target((5,)), _target((2, 3, 5))]
    batch = _engine(sd1_unet, step_size=60.0, max_refine=3).step(0, z, cond_runner(sd1_unet, ctx), targets)
    for b in range(3):
        alone = _engine(sd1_unet, step_size=60.0, max_refine=3).step(
            0, z[b : b + 1], cond_runner(sd1_unet, ctx[b : b + 1]), [targets[b]]
        )
        torch.testing.assert_close(batch.latent[b], alone.latent[0], rtol=1e-5, atol=1e-6)
        assert batch.scores[b] == pytest.approx(alone.scores[0], rel=1e-5)
        assert batch.refine_iterations.get(b) == alone.refine_iterations.get(0)


def test_image_without_subjects_is_left_alone(sd1_unet):
    z = torch.randn(2, 4, 16, 16)
    calls = []
    run = cond_runner(sd1_unet, make_context(2))
    result = _engine(sd1_unet).step(
        3, z, lambda zz, rows: (calls.append((zz.shape[0], rows)), run(zz, rows)), [None, _target()]
    )
    assert torch.equal(result.latent[0], z[0]) and not torch.equal(result.latent[1], z[1])
    assert calls == [(1, [1])], "the A&E pass runs the conditional rows of the images that need it, once"


def test_refinement_stops_per_image_at_threshold_and_at_cap(sd1_unet):
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    ctx = make_context(2, seed=3)
    targets = [_target((5,)), _target((2, 3, 4, 5))]
    # Random weights give near-uniform attention (scores ~ 1/75), so the threshold is set where one image
    # reaches it after a few iterations and the other does not.
    engine = _engine(sd1_unet, step_size=400.0, max_refine=6, thresholds="0.4:0.024")
    seen = []
    result = engine.step(20, z, cond_runner(sd1_unet, ctx), targets, on_refine=lambda i, n: seen.append((i, n)))
    its = result.refine_iterations
    assert its[0] != its[1], f"the two images must leave refinement at different iterations: {its}"
    assert 1 < its[0] < 6 and result.threshold_met[0]
    assert its[1] == 6 and not result.threshold_met[1]
    assert seen and all(n == 6 for _, n in seen)
    assert result.passes == 1 + max(its.values())


def test_refinement_honours_should_stop(sd1_unet):
    z = torch.randn(1, 4, 16, 16)
    engine = _engine(sd1_unet, max_refine=20, step_size=1.0)
    result = engine.step(
        0, z, cond_runner(sd1_unet, make_context(1)), [_target((2, 3, 4, 5))], should_stop=lambda: True
    )
    assert result.passes == 1 and not result.refine_iterations


def test_non_finite_gradient_skips_the_update(sd1_unet):
    z = torch.randn(1, 4, 16, 16)
    z_bad = z.clone()
    ctx = make_context(1)
    ctx[0, 3] = float("nan")
    result = _engine(sd1_unet).step(1, z_bad, cond_runner(sd1_unet, ctx), [_target()])
    assert torch.equal(result.latent, z) and 0 in result.skipped


def test_steps_outside_the_window_do_nothing(sd1_unet):
    engine = _engine(sd1_unet)
    calls = []
    assert engine.step(25, torch.randn(1, 4, 16, 16), lambda *a: calls.append(a), [_target()]) is None
    assert calls == []
