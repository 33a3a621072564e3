"""Nothing stays patched after the block (also after an exception); bad input is named, the image still made."""

from __future__ import annotations

import pytest
import torch
from check_glue import PROMPT, load
from diffusers import HeunDiscreteScheduler, KDPM2DiscreteScheduler

from ae_diffusers import AEWarning, attend_and_excite

STEPS = 6


def run(pipe, **kwargs):
    return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=7.5, output_type="latent",
                generator=torch.Generator().manual_seed(0), **kwargs).images


def state(pipe) -> dict:
    unet = pipe.unet
    return {
        "pipe attributes": sorted(k for k, v in vars(pipe).items()
                                  if callable(v) and not isinstance(v, torch.nn.Module)),
        "scheduler attributes": sorted(k for k, v in vars(pipe.scheduler).items() if callable(v)),
        "hooks": [(n, len(m._forward_pre_hooks), len(m._forward_hooks)) for n, m in unet.named_modules()
                  if m._forward_pre_hooks or m._forward_hooks],
        "processors": {k: type(v).__name__ for k, v in unet.attn_processors.items()},
        "requires_grad": [p.requires_grad for p in unet.parameters()],
        "grad enabled": torch.is_grad_enabled(),
    }


@pytest.fixture(scope="module")
def pipe():
    return load("sd1")


@pytest.fixture(scope="module")
def plain(pipe):
    return run(pipe)


def test_nothing_left_after_a_run(pipe, plain):
    before = state(pipe)
    with attend_and_excite(pipe, "cat, frog") as ae:
        moved = run(pipe)
    assert ae.runs[-1].steps_altered == 3 and not ae.messages
    assert not torch.equal(moved, plain)
    assert state(pipe) == before
    assert torch.equal(run(pipe), plain)


class Interrupt(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("where", ["callback", "inside the A&E pass"])
def test_nothing_left_after_an_exception(pipe, plain, where):
    before = state(pipe)
    kwargs, handle = {}, None
    if where == "callback":
        def callback(p, i, t, kw):
            if i == 1:
                raise Interrupt
            return kw

        kwargs["callback_on_step_end"] = callback
    else:  # a Ctrl-C while A&E's own pass runs (grad on): it must go through our boundary untouched
        def stop(module, args):
            if torch.is_grad_enabled():
                raise Interrupt

        handle = pipe.unet.down_blocks[0].register_forward_pre_hook(stop)
    try:
        with pytest.raises(Interrupt), attend_and_excite(pipe, "cat, frog"):
            run(pipe, **kwargs)
    finally:
        if handle is not None:
            handle.remove()
    assert state(pipe) == before
    assert torch.equal(run(pipe), plain)


def test_a_subject_not_in_the_prompt_is_named_and_the_image_made(pipe, plain):
    with pytest.warns(AEWarning, match="'dog' is not a word of the prompt"), attend_and_excite(pipe, "cat, dog") as ae:
        image = run(pipe)
    assert torch.equal(image, plain)
    assert ae.scores == [None]


def test_an_error_inside_the_hook_stands_down_and_the_image_is_made(pipe, plain):
    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")

    with pytest.warns(AEWarning, match="A&E stopped: engine exploded"), attend_and_excite(pipe, "cat, frog") as ae:
        ae_step = ae._start

        def start(latents):
            ae_step(latents)
            ae._call.step.engine.step = broken

        ae._start = start
        image = run(pipe)
    assert torch.equal(image, plain)


@pytest.mark.parametrize(("values", "message"), [
    ({"step_size": -1}, "Step size (scale factor): -1 is below the minimum 0"),
    ({"max_refine": 1.5}, "Max refinement iterations: expected a whole number, got 1.5"),
    ({"thresholds": "0.2"}, "refinement threshold '0.2' is not 'fraction:threshold'"),
    ({"strength": 1}, "unknown parameter 'strength'"),
])
def test_bad_parameters_raise_with_the_params_message(pipe, values, message):
    before = state(pipe)
    pattern = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=pattern), attend_and_excite(pipe, "cat", **values):
        pass
    assert state(pipe) == before


@pytest.mark.parametrize("cls", [HeunDiscreteScheduler, KDPM2DiscreteScheduler])
def test_two_call_schedulers_are_refused_with_the_reason(pipe, cls):
    original = pipe.scheduler
    pipe.scheduler = cls.from_config(original.config)
    try:
        with pytest.raises(ValueError, match="calls the UNet twice per step"), attend_and_excite(pipe, "cat"):
            pass
    finally:
        pipe.scheduler = original


def test_a_scheduler_swapped_inside_the_block_is_refused_at_the_call(pipe):
    original = pipe.scheduler
    refused = "A&E did not act: HeunDiscreteScheduler calls the UNet twice"
    with pytest.warns(AEWarning, match=refused), attend_and_excite(pipe, "cat, frog") as ae:
        pipe.scheduler = HeunDiscreteScheduler.from_config(original.config)
        try:
            image = run(pipe)
        finally:
            pipe.scheduler = original
    assert ae.runs[-1].steps_altered == 0
    assert image.shape == (1, 4, 16, 16)


def test_step_size_zero_gives_the_plain_latent_bit_for_bit(pipe, plain):
    with attend_and_excite(pipe, "cat, frog", step_size=0) as ae:
        image = run(pipe)
    assert ae.runs[-1].steps_altered == 3
    assert torch.equal(image, plain)


def test_prompt_embeds_without_a_prompt_is_named(pipe):
    embeds, negative = pipe.encode_prompt(PROMPT, "cpu", 1, True)
    with pytest.warns(AEWarning, match="needs the prompt text"), attend_and_excite(pipe, "cat") as ae:
        pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=STEPS, output_type="latent")
    assert ae.runs[-1].steps_altered == 0
