"""Stand-in for modules/sd_samplers_timesteps.py (v1.10.1): DDIM / DDIM CFG++ / PLMS (/ UniPC listed) on
CFGDenoiserTimesteps, whose 'sigma' is a timestep and whose x is z_t itself."""

from __future__ import annotations

import inspect

import torch
from modules import devices, sd_samplers_common, sd_samplers_timesteps_impl, shared
from modules.script_callbacks import ExtraNoiseParams, extra_noise_callback
from modules.sd_samplers_cfg_denoiser import CFGDenoiser
from modules.shared import opts

# modules/sd_samplers_timesteps.py:samplers_timesteps
samplers_timesteps = [
    ("DDIM", sd_samplers_timesteps_impl.ddim, ["ddim"], {}),
    ("DDIM CFG++", sd_samplers_timesteps_impl.ddim_cfgpp, ["ddim_cfgpp"], {}),
    ("PLMS", sd_samplers_timesteps_impl.plms, ["plms"], {}),
    ("UniPC", sd_samplers_timesteps_impl.unipc, ["unipc"], {}),
]
samplers_data_timesteps = [
    sd_samplers_common.SamplerData(label, lambda model, funcname=funcname: CompVisSampler(funcname, model),
                                   aliases, options)
    for label, funcname, aliases, options in samplers_timesteps
]


class CompVisTimestepsDenoiser(torch.nn.Module):
    """modules/sd_samplers_timesteps.py:CompVisTimestepsDenoiser -- eps = apply_model(input, timesteps, cond)."""

    def __init__(self, model, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.inner_model = model

    def forward(self, input, timesteps, **kwargs):
        return self.inner_model.apply_model(input, timesteps, **kwargs)


class CompVisTimestepsVDenoiser(torch.nn.Module):
    """modules/sd_samplers_timesteps.py:CompVisTimestepsVDenoiser -- v prediction converted to eps."""

    def __init__(self, model, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.inner_model = model

    def forward(self, input, timesteps, **kwargs):
        v = self.inner_model.apply_model(input, timesteps, **kwargs)
        ac = self.inner_model.alphas_cumprod[timesteps.to(torch.int), None, None, None]
        return torch.sqrt(ac) * v + torch.sqrt(1 - ac) * input


class CFGDenoiserTimesteps(CFGDenoiser):
    """modules/sd_samplers_timesteps.py:CFGDenoiserTimesteps -- mask blended before denoising."""

    def __init__(self, sampler) -> None:
        super().__init__(sampler)
        self.alphas = shared.sd_model.alphas_cumprod
        self.mask_before_denoising = True

    def get_pred_x0(self, x_in, x_out, sigma):
        a_t = self.alphas[sigma.to(dtype=int)][:, None, None, None]
        return (x_in - (1 - a_t).sqrt() * x_out) / a_t.sqrt()

    @property
    def inner_model(self):
        if self.model_wrap is None:
            denoiser = (CompVisTimestepsVDenoiser if shared.sd_model.parameterization == "v"
                        else CompVisTimestepsDenoiser)
            self.model_wrap = denoiser(shared.sd_model)
        return self.model_wrap


class CompVisSampler(sd_samplers_common.Sampler):
    """modules/sd_samplers_timesteps.py:CompVisSampler"""

    def __init__(self, funcname, sd_model) -> None:
        super().__init__(funcname)
        self.eta_option_field = "eta_ddim"
        self.eta_infotext_field = "Eta DDIM"
        self.eta_default = 0.0
        self.model_wrap_cfg = CFGDenoiserTimesteps(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def get_timesteps(self, p, steps: int) -> torch.Tensor:
        """modules/sd_samplers_timesteps.py:CompVisSampler.get_timesteps -- range(0, 1000, 1000 // steps) + 1,
        clipped to [0, 999] (20 steps -> 1, 51, ..., 951)."""
        discard = self.config is not None and self.config.options.get("discard_next_to_last_sigma", False)
        if opts.always_discard_next_to_last_sigma and not discard:
            discard = True
            p.extra_generation_params["Discard penultimate sigma"] = True
        steps += 1 if discard else 0
        return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps)), device=devices.device) + 1, 0, 999)

    def _extra_args(self, p, conditioning, unconditional_conditioning, image_conditioning) -> dict:
        return {"cond": conditioning, "image_cond": image_conditioning, "uncond": unconditional_conditioning,
                "cond_scale": p.cfg_scale, "s_min_uncond": self.s_min_uncond}

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        """modules/sd_samplers_timesteps.py:CompVisSampler.sample_img2img -- noised to timesteps[t_enc]."""
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        timesteps = self.get_timesteps(p, steps)
        timesteps_sched = timesteps[:t_enc]
        alphas_cumprod = shared.sd_model.alphas_cumprod
        sqrt_a = torch.sqrt(alphas_cumprod[timesteps[t_enc]])
        sqrt_one_minus_a = torch.sqrt(1 - alphas_cumprod[timesteps[t_enc]])
        xi = x * sqrt_a + noise * sqrt_one_minus_a
        if opts.img2img_extra_noise > 0:
            p.extra_generation_params["Extra noise"] = opts.img2img_extra_noise
            params = ExtraNoiseParams(noise, x, xi)
            extra_noise_callback(params)
            noise = params.noise
            xi += noise * opts.img2img_extra_noise * sqrt_a
        kwargs = self.initialize(p)
        parameters = inspect.signature(self.func).parameters
        if "timesteps" in parameters:
            kwargs["timesteps"] = timesteps_sched
        if "is_img2img" in parameters:
            kwargs["is_img2img"] = True
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning, image_conditioning)
        samples = self.launch_sampling(t_enc + 1, lambda: self.func(
            self.model_wrap_cfg, xi, extra_args=self.sampler_extra_args, disable=False, callback=self.callback_state,
            **kwargs))
        self.add_infotext(p)
        return samples

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        """modules/sd_samplers_timesteps.py:CompVisSampler.sample -- x (the rng noise itself) is passed as is."""
        steps = steps or p.steps
        timesteps = self.get_timesteps(p, steps)
        kwargs = self.initialize(p)
        if "timesteps" in inspect.signature(self.func).parameters:
            kwargs["timesteps"] = timesteps
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning, image_conditioning)
        samples = self.launch_sampling(steps, lambda: self.func(
            self.model_wrap_cfg, x, extra_args=self.sampler_extra_args, disable=False, callback=self.callback_state,
            **kwargs))
        self.add_infotext(p)
        return samples
