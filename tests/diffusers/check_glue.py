"""The diffusers glue in the current diffusers (run inside its venv by test_diffusers.py, env AE_DIFFUSERS_WORK:
the tiny pipelines and the deprecated pipeline's outputs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

import diffusers  # noqa: E402
from common import GUIDANCE, PROMPT, SEED, STEPS, SUBJECTS  # noqa: E402

from ae_diffusers import attend_and_excite  # noqa: E402

WORK = Path(os.environ["AE_DIFFUSERS_WORK"])
# fp64 runs: transformers' CLIP builds its causal mask in the default dtype (legacy_reference.py does the same).
torch.set_default_dtype(torch.float64)


def load(kind: str, dtype=torch.float64, cls=None):
    cls = cls or (diffusers.StableDiffusionXLPipeline if kind == "sdxl" else diffusers.StableDiffusionPipeline)
    pipe = cls.from_pretrained(WORK / kind).to(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, steps=STEPS, **kwargs):
    return pipe(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, output_type="latent",
                generator=torch.Generator().manual_seed(SEED), **kwargs).images


@pytest.mark.parametrize(("kind", "dtype"), [("sd1", "float64"), ("sd1", "float32"), ("sd2", "float64")])
def test_equals_the_deprecated_pipeline(kind, dtype):
    """Same tiny weights, prompt, seed and defaults: the glue's final latent is diffusers 0.33.1's."""
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        pipe = load(kind, getattr(torch, dtype))
        with attend_and_excite(pipe, SUBJECTS) as ae:
            ours = generate(pipe)
        plain = generate(pipe)
    finally:
        torch.set_default_dtype(torch.float64)
    reference = torch.load(WORK / f"legacy-{kind}-{dtype}.pt")
    diff = float((ours - reference).abs().max())
    moved = float((plain - reference).abs().max())
    print(f"\nAE_FIGURE {kind} {dtype}: max |ours - 0.33.1| = {diff:.3e} (A&E moved the latent by {moved:.3e})")
    assert moved > 1e-3, "A&E must change this run, or the equality shows nothing"
    assert ae.runs[-1].steps_altered == 25
    assert len(ae.scores) == 1 and len(ae.scores[0]) == 2
    # fp32: the reported figure; the glue must still end far closer to the reference than the plain run is
    assert diff <= (1e-10 if dtype == "float64" else 0.1 * moved)
