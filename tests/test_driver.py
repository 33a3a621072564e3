"""The step driver both glues call per step: plan check, z from the sampler's x, the engine, the in-place update,
the record and the warnings."""

from __future__ import annotations

import logging

import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, TokenRule, text_columns
from ae_lib.driver import StepDriver
from ae_lib.engine import AttendExcite
from ae_lib.latents import apply_scaled_update, c_in, scale_to_z
from ae_lib.objectives import ImageTarget

COLS = tuple(text_columns(prompt_columns("a cat and a frog"), TokenRule.REFERENCE))
TARGET = ImageTarget((2, 5), COLS, ("cat", "frog"))
PARAMS = AEParams(enabled=True, subjects="x", thresholds="none", save_maps=True)


def _driver(unet, warnings, **kwargs):
    return StepDriver(unet, PARAMS, 50, warnings.append, "a hint", keep_maps=True, **kwargs)


def test_step_moves_x_in_place_as_the_engine_moves_z(sd1_unet):
    sigma = torch.tensor([3.0, 3.0])
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2)) * 3
    before = x.clone()
    run = cond_runner(sd1_unet, make_context(2))
    driver = _driver(sd1_unet, [])
    result = driver.step(4, x, c_in(sigma), run, [TARGET, None])
    z = scale_to_z(before, c_in(sigma))
    expected = AttendExcite(sd1_unet, PARAMS, driver.schedule).step(4, z, run, [TARGET, None]).latent
    assert torch.equal(result.latent, expected)
    moved = before.clone()
    apply_scaled_update(moved, z, expected, c_in(sigma))
    assert torch.equal(x, moved) and not torch.equal(x[0], before[0])
    assert torch.equal(x[1], before[1]), "a row without a target stays bit-exact"
    assert driver.altered == [4] and driver.images[0].scores == result.scores[0]
    assert driver.images[0].first_maps.shape == (2, 4, 4)


def test_step_outside_the_window_does_nothing(sd1_unet):
    x = torch.randn(1, 4, 16, 16)
    before = x.clone()
    driver = _driver(sd1_unet, [])
    assert not driver.alters(25)
    assert driver.step(25, x, None, cond_runner(sd1_unet, make_context(1)), [TARGET]) is None
    assert torch.equal(x, before) and driver.altered == [] and driver.images == {}


def test_skipped_update_is_a_warning_with_the_hosts_hint(sd1_unet, monkeypatch):
    def nan_scores(self, *args, **kwargs):
        ev = original(self, *args, **kwargs)
        ev.scores = [[float("nan")] * len(s) for s in ev.scores]
        return ev

    original = AttendExcite.evaluate
    monkeypatch.setattr(AttendExcite, "evaluate", nan_scores)
    warnings: list[str] = []
    x = torch.randn(1, 4, 16, 16)
    before = x.clone()
    _driver(sd1_unet, warnings).step(3, x, None, cond_runner(sd1_unet, make_context(1)), [TARGET])
    assert torch.equal(x, before)
    assert warnings == ["half precision: non-finite attention scores or gradient; update skipped (a hint)"]


def test_refinement_is_logged_and_reported_to_the_host(sd1_unet, caplog):
    params = AEParams(enabled=True, subjects="x", thresholds="0:0.99", max_refine=2)
    progress: list[tuple[int, int]] = []
    driver = StepDriver(sd1_unet, params, 50, print, "", progress=lambda i, n: progress.append((i, n)))
    with caplog.at_level(logging.INFO, logger="attend_and_excite"):
        driver.step(0, torch.randn(1, 4, 16, 16), None, cond_runner(sd1_unet, make_context(1)), [TARGET])
    assert progress == [(1, 2), (2, 2)] and driver.refined == {0: 2}
    assert "A&E step 0: refining (at most 2 iterations)" in caplog.text
    assert "A&E step 0: 2 refinement iterations" in caplog.text


def test_the_driver_runs_the_objective_the_params_name(sd1_unet):
    """Two glues once forgot to pass the objective and ran the paper's on the user's groups: the params decide."""
    chosen = AEParams(enabled=True, objective="contrast", groups="red car; blue bird")
    assert StepDriver(sd1_unet, chosen, 50, print, "").engine.objective.name == "contrast"
    assert StepDriver(sd1_unet, PARAMS, 50, print, "").engine.objective.name == "excite"
    assert StepDriver(sd1_unet, chosen, 50, print, "", objective="bind").engine.objective.name == "bind"
