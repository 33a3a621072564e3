"""SDXL and the img2img pipelines, and the columns each pipeline's subjects map to."""

from __future__ import annotations

import diffusers
import pytest
import torch
from check_glue import PROMPT, load
from PIL import Image

from ae_diffusers import AEWarning, attend_and_excite, prompt_columns, token_rule
from ae_lib.scores import TokenRule
from ae_lib.tokens import map_subjects

STEPS = 6


def run(pipe, **kwargs):
    return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=7.5, output_type="latent",
                generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.mark.parametrize(("kind", "rule"), [("sd1", TokenRule.REFERENCE), ("sd2", TokenRule.PROMPT_ONLY),
                                            ("sdxl", TokenRule.PROMPT_ONLY)])
def test_token_rule_and_columns(kind, rule):
    pipe = load(kind)
    assert token_rule(pipe) is rule
    prompt = "a cat " + "very " * 80 + "frog"  # 83 tokens: the pipelines cut it at 75
    for tokenizer in filter(None, (pipe.tokenizer, getattr(pipe, "tokenizer_2", None))):
        ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        cols = prompt_columns(tokenizer, prompt)
        assert [c.token_id for c in cols] == ids
        found = map_subjects(cols, "cat, very#30, frog")
        assert found.columns == [2, 32]
        assert found.errors == ["'frog' is not a word of the prompt"]  # cut off by the pipeline's truncation
    end = next(c.column for c in prompt_columns(pipe.tokenizer, PROMPT) if c.kind == "end")
    assert end == 6


@pytest.mark.parametrize("kind", ["sdxl", "sd2"])
def test_acts_and_step_size_zero_is_plain(kind):
    pipe = load(kind)
    plain = run(pipe)
    with attend_and_excite(pipe, "cat, frog", step_size=0) as off:
        assert torch.equal(run(pipe), plain)
    with attend_and_excite(pipe, "cat, frog", step_size=60) as ae:
        moved = run(pipe)
    assert ae.runs[-1].steps_altered == off.runs[-1].steps_altered == 3
    assert not torch.equal(moved, plain)
    assert ae.runs[-1].labels == [("cat", "frog")]
    assert min(ae.scores[0]) > min(off.scores[0]), "the weakest subject's score rises over step size 0"


@pytest.mark.parametrize(("kind", "cls"), [("sd1", diffusers.StableDiffusionImg2ImgPipeline),
                                           ("sdxl", diffusers.StableDiffusionXLImg2ImgPipeline)])
def test_img2img_alters_the_part_of_the_window_it_runs(kind, cls):
    pipe = load(kind, cls=cls)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    image = Image.fromarray((torch.rand(128, 128, 3, generator=torch.Generator().manual_seed(1)) * 255).byte().numpy())
    with attend_and_excite(pipe, "cat, frog") as ae:
        pipe(PROMPT, image=image, strength=0.7, num_inference_steps=10, output_type="latent",
             generator=torch.Generator().manual_seed(0))
    # 10 steps, strength 0.7: steps 3-9 run; the window is steps 0-4, refinement at 0, 2 and 4: steps 3 and 4 altered
    assert ae.runs[-1].steps_altered == 2
    assert len(ae.scores) == 1 and len(ae.scores[0]) == 2


def test_batches_and_per_prompt_subjects():
    pipe = load("sd1")
    prompts = [PROMPT, "a dog on a boat"]
    with attend_and_excite(pipe, ["cat, frog", "dog, boat"]) as ae:
        pipe(prompts, num_images_per_prompt=2, num_inference_steps=STEPS, output_type="latent",
             generator=torch.Generator().manual_seed(0))
    assert ae.runs[-1].labels == [("cat", "frog")] * 2 + [("dog", "boat")] * 2
    assert all(s is not None and len(s) == 2 for s in ae.scores)


def test_contrast_with_groups_acts():
    """objective="contrast" with groups reaches the engine: the group tokens are scored, the latent moves, and
    each token's separation (own group minus the other) ends higher than at step size 0."""
    pipe = load("sd1")
    prompt = "a red cat and a blue frog"
    kwargs = {"num_inference_steps": STEPS, "guidance_scale": 7.5, "output_type": "latent"}
    plain = pipe(prompt, generator=torch.Generator().manual_seed(0), **kwargs).images
    runs = {}
    for size in (0, 60):
        with attend_and_excite(pipe, groups="red cat; blue frog", objective="contrast", step_size=size) as ae:
            latent = pipe(prompt, generator=torch.Generator().manual_seed(0), **kwargs).images
        runs[size] = (ae, latent)
    (off, same), (ae, moved) = runs[0], runs[60]
    assert not ae.messages and not off.messages
    assert ae.runs[-1].labels == [("red", "cat", "blue", "frog")]
    assert ae.runs[-1].steps_altered == off.runs[-1].steps_altered == 3
    assert torch.equal(same, plain) and not torch.equal(moved, plain)
    assert sum(ae.scores[0]) > sum(off.scores[0]), "the tokens' separation rises over step size 0"


def test_groups_on_an_objective_without_groups_is_named():
    pipe = load("sd1")
    with pytest.warns(AEWarning, match="takes no groups"), attend_and_excite(pipe, "cat", groups="red cat") as ae:
        run(pipe)
    assert ae.runs[-1].steps_altered == 0
    with pytest.raises(ValueError, match="Objective: 'nonesuch' is not one of"):
        attend_and_excite(pipe, groups="red cat", objective="nonesuch").__enter__()
