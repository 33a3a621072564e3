"""Every scheduler A&E knows: the update runs once per step, on the step's own latent, and the scheduler's step
continues from the moved latent (a probe as in the WebUI and ComfyUI sampler tests)."""

from __future__ import annotations

import diffusers
import pytest
import torch
from check_glue import PROMPT, load

from ae_diffusers import KNOWN, attend_and_excite
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule

STEPS = 8


@pytest.fixture(scope="module")
def pipe():
    return load("sd1")


class Probe:
    """Records what each denoising step's UNet call saw and what the scheduler's step was given."""

    def __init__(self, pipe) -> None:
        self.unet_inputs: list[torch.Tensor] = []
        self.step_samples: list[torch.Tensor] = []
        self.step_inputs: list[torch.Tensor] = []  # the scheduler's model input for the latent its step got
        self.step_outputs: list[torch.Tensor] = []
        original = pipe.scheduler.step

        def step(model_output, timestep, sample, *args, **kwargs):
            self.step_samples.append(sample.clone())
            self.step_inputs.append(pipe.scheduler.scale_model_input(sample.clone(), timestep))
            out = original(model_output, timestep, sample, *args, **kwargs)
            self.step_outputs.append((out[0] if isinstance(out, tuple) else out.prev_sample).clone())
            return out

        pipe.scheduler.step = step

    def hook(self, module, args, kwargs):
        if not torch.is_grad_enabled():  # the denoising call, not A&E's own pass
            sample = args[0] if args else kwargs["sample"]
            self.unet_inputs.append(sample[-1:].clone())


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_once_per_step_on_the_steps_own_latent(pipe, name):
    original = pipe.scheduler
    pipe.scheduler = getattr(diffusers, name).from_config(original.config)
    probe = Probe(pipe)
    init = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    try:
        with attend_and_excite(pipe, "cat, frog", step_size=40) as ae:
            handle = pipe.unet.register_forward_pre_hook(probe.hook, with_kwargs=True)  # after ours: sees our input
            try:
                pipe(PROMPT, num_inference_steps=STEPS, latents=init.clone(), output_type="latent",
                     generator=torch.Generator().manual_seed(0))
            finally:
                handle.remove()
    finally:
        del pipe.scheduler.step
        scheduler, pipe.scheduler = pipe.scheduler, original
    loop = len(scheduler.timesteps)
    window = Schedule.from_params(AEParams(), STEPS).alter_until
    assert not ae.messages, ae.messages
    assert len(probe.unet_inputs) == len(probe.step_samples) == loop
    assert ae.runs[-1].steps_altered == window, "one A&E update per altered step"
    before = [init * scheduler.init_noise_sigma, *probe.step_outputs[:-1]]
    for i in range(loop):
        moved = not torch.equal(probe.step_samples[i], before[i])
        assert moved == (i < window), f"step {i}: A&E moved the latent: {moved}"
        torch.testing.assert_close(probe.unet_inputs[i], probe.step_inputs[i], rtol=0, atol=1e-12,
                                   msg=f"step {i}: the UNet saw another latent than the scheduler's step got")
