"""ae_lib's scores and updated latent equal the plain reference implementation (tests/reference_ae.py)."""

from __future__ import annotations

import pytest
import torch

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, ImageTarget, Schedule, TokenRule, text_columns
from tests.reference_ae import reference_step

PROMPT = "a cat and a frog"
SUBJECTS = (2, 5)


def _setup(kind: str, rule: TokenRule, seed: int = 0):
    cols = prompt_columns(PROMPT, pad_id=0 if kind == "sd2" else 49407)
    target = ImageTarget(SUBJECTS, tuple(text_columns(cols, rule)))
    last_idx = -1 if rule is TokenRule.REFERENCE else next(c.column for c in cols if c.kind == "end")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, 4, 16, 16, generator=g)
    return target, last_idx, z, make_context(1)


def _engine(unet, params: AEParams, steps: int = 50) -> AttendExcite:
    return AttendExcite(unet, params, Schedule.from_params(params, steps))


@pytest.mark.parametrize(("kind", "rule"), [("sd1", TokenRule.REFERENCE), ("sd2", TokenRule.PROMPT_ONLY)])
@pytest.mark.parametrize("index", [1, 24])
def test_plain_step_matches_reference(request, kind, rule, index):
    unet = request.getfixturevalue(f"{kind}_unet")
    target, last_idx, z, ctx = _setup(kind, rule)
    params = AEParams(enabled=True, subjects="cat, frog")
    engine = _engine(unet, params)
    result = engine.step(index, z, cond_runner(unet, ctx), [target])
    step_size = engine.schedule.step_sizes[index]
    ref_z, ref_scores, _ = reference_step(unet, z, 500.0, ctx, list(SUBJECTS), (4, 4), last_idx, step_size)
    torch.testing.assert_close(torch.tensor(result.scores[0]), torch.tensor(ref_scores), rtol=1e-5, atol=0)
    torch.testing.assert_close(result.latent, ref_z, rtol=1e-5, atol=1e-6)
    assert not torch.equal(result.latent, z), "the step must move the latent"


@pytest.mark.parametrize(("kind", "rule"), [("sd1", TokenRule.REFERENCE), ("sd2", TokenRule.PROMPT_ONLY)])
def test_refinement_matches_reference(request, kind, rule):
    unet = request.getfixturevalue(f"{kind}_unet")
    target, last_idx, z, ctx = _setup(kind, rule, seed=3)
    params = AEParams(enabled=True, subjects="cat, frog", step_size=200.0, max_refine=4, smoothing=True)
    engine = _engine(unet, params)
    threshold = engine.schedule.thresholds[10]
    result = engine.step(10, z, cond_runner(unet, ctx), [target])
    ref_z, ref_scores, ref_iters = reference_step(
        unet, z, 500.0, ctx, list(SUBJECTS), (4, 4), last_idx, engine.schedule.step_sizes[10], threshold, max_refine=4
    )
    assert ref_iters > 0, "the case must exercise refinement"
    assert result.refine_iterations[0] == ref_iters
    torch.testing.assert_close(torch.tensor(result.scores[0]), torch.tensor(ref_scores), rtol=1e-5, atol=0)
    torch.testing.assert_close(result.latent, ref_z, rtol=1e-5, atol=1e-6)
    assert result.passes == 1 + ref_iters  # the reference ran 1 + iterations + 1 + 2 x iterations passes
