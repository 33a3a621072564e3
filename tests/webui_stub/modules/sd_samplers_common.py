"""Stand-in for modules/sd_samplers_common.py (v1.10.1): SamplerData, the Sampler base (initialize, launch_sampling,
callback_state), TorchHijack, apply_refiner, img2img step arithmetic and latent <-> image helpers."""

from __future__ import annotations

import inspect
from collections import namedtuple

import k_diffusion.sampling
import torch
from modules import devices, rng, sd_models, shared
from modules.shared import opts, state

SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


class SamplerData(SamplerDataTuple):
    """modules/sd_samplers_common.py:SamplerData -- total_steps doubles steps for "second_order" samplers."""

    def total_steps(self, steps: int) -> int:
        if self.options.get("second_order", False):
            steps = steps * 2
        return steps


def setup_img2img_steps(p, steps: int | None = None) -> tuple[int, int]:
    """modules/sd_samplers_common.py:setup_img2img_steps -- (schedule length, t_enc)."""
    if opts.img2img_fix_steps or steps is not None:
        requested_steps = steps or p.steps
        steps = int(requested_steps / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested_steps - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample: torch.Tensor, approximation=None, model=None) -> torch.Tensor:
    """modules/sd_samplers_common.py:samples_to_images_tensor -- only 'Full' (the model's VAE) is covered."""
    model = model or shared.sd_model
    with torch.no_grad(), devices.without_autocast():
        return model.decode_first_stage(sample.to(model.first_stage_model.dtype))


def decode_first_stage(model, x: torch.Tensor) -> torch.Tensor:
    """modules/sd_samplers_common.py:decode_first_stage"""
    return samples_to_images_tensor(
        x.to(devices.dtype_vae), approximation_indexes.get(opts.sd_vae_decode_method, 0), model
    )


def images_tensor_to_samples(image: torch.Tensor, approximation=None, model=None) -> torch.Tensor:
    """modules/sd_samplers_common.py:images_tensor_to_samples -- image in [0, 1] -> latent, one image at a time."""
    model = model or shared.sd_model
    image = image.to(shared.device, dtype=devices.dtype_vae) * 2 - 1
    if len(image) > 1:
        return torch.stack([model.get_first_stage_encoding(model.encode_first_stage(img[None]))[0] for img in image])
    return model.get_first_stage_encoding(model.encode_first_stage(image))


def store_latent(decoded: torch.Tensor) -> None:
    """modules/sd_samplers_common.py:store_latent -- live preview source (no image is rendered here)."""
    state.current_latent = decoded


class InterruptedException(BaseException):
    """modules/sd_samplers_common.py:InterruptedException -- a BaseException, so `except Exception` misses it."""


def replace_torchsde_browinan() -> None:
    """modules/sd_samplers_common.py:replace_torchsde_browinan -- Brownian-tree noise from devices.randn_local."""
    import torchsde._brownian.brownian_interval

    def torchsde_randn(size, dtype, device, seed):
        return rng.randn_local(seed, size).to(device=device, dtype=dtype)  # devices.randn_local in v1.10.1

    torchsde._brownian.brownian_interval._randn = torchsde_randn


replace_torchsde_browinan()


def apply_refiner(cfg_denoiser, sigma=None) -> bool:
    """modules/sd_samplers_common.py:apply_refiner -- switches shared.sd_model to p.refiner_checkpoint_info once the
    completed ratio reaches p.refiner_switch_at, then p.setup_conds() and cfg_denoiser.update_inner_model()."""
    p = cfg_denoiser.p
    if opts.refiner_switch_by_sample_steps or sigma is None:
        completed_ratio = cfg_denoiser.step / cfg_denoiser.total_steps
        p.extra_generation_params["Refiner switch by sampling steps"] = True
    else:
        try:
            timestep = torch.argmin(torch.abs(cfg_denoiser.inner_model.sigmas.to(sigma.device) - torch.max(sigma)))
        except AttributeError:  # timestep samplers: sigma already is a timestep
            timestep = torch.max(sigma).to(dtype=int)
        completed_ratio = (999 - timestep) / 1000
    refiner_switch_at = p.refiner_switch_at
    refiner_checkpoint_info = p.refiner_checkpoint_info
    if refiner_switch_at is not None and completed_ratio < refiner_switch_at:
        return False
    if refiner_checkpoint_info is None or shared.sd_model.sd_checkpoint_info == refiner_checkpoint_info:
        return False
    if getattr(p, "enable_hr", False):
        is_second_pass = p.is_hr_pass
        if opts.hires_fix_refiner_pass == "first pass" and is_second_pass:
            return False
        if opts.hires_fix_refiner_pass == "second pass" and not is_second_pass:
            return False
        if opts.hires_fix_refiner_pass != "second pass":
            p.extra_generation_params["Hires refiner"] = opts.hires_fix_refiner_pass
    p.extra_generation_params["Refiner"] = refiner_checkpoint_info.short_title
    p.extra_generation_params["Refiner switch at"] = refiner_switch_at
    with sd_models.SkipWritingToConfig():
        sd_models.reload_model_weights(info=refiner_checkpoint_info)
    p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


class TorchHijack:
    """modules/sd_samplers_common.py:TorchHijack -- replaces k_diffusion.sampling.torch: randn_like draws
    p.rng.next(); every other attribute is torch's."""

    def __init__(self, p) -> None:
        self.rng = p.rng

    def __getattr__(self, item):
        if item == "randn_like":
            return self.randn_like
        if hasattr(torch, item):
            return getattr(torch, item)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'")

    def randn_like(self, x):
        return self.rng.next()


class Sampler:
    """modules/sd_samplers_common.py:Sampler"""

    def __init__(self, funcname) -> None:
        self.funcname = funcname
        self.func = funcname
        self.extra_params: list[str] = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config: SamplerData | None = None
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float("inf")
        self.s_noise = 1.0
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.conditioning_key = getattr(shared.sd_model.model, "conditioning_key", "crossattn")
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options: dict = {}

    def callback_state(self, d: dict) -> None:
        """modules/sd_samplers_common.py:Sampler.callback_state -- state.sampling_step = d['i'] AFTER the step's
        (first) model call."""
        step = d["i"]
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        state.sampling_step = step
        shared.total_tqdm.update()

    def launch_sampling(self, steps: int, func):
        """modules/sd_samplers_common.py:Sampler.launch_sampling -- an interrupt returns self.last_latent."""
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except RecursionError:
            return self.last_latent
        except InterruptedException:
            return self.last_latent

    def number_of_needed_noises(self, p) -> int:
        return p.steps

    def initialize(self, p) -> dict:
        """modules/sd_samplers_common.py:Sampler.initialize -- binds p, resets model_wrap_cfg.step to 0, routes
        k-diffusion's torch.randn_like to p.rng, and builds eta / s_* keyword args."""
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = p.mask if hasattr(p, "mask") else None
        self.model_wrap_cfg.nmask = p.nmask if hasattr(p, "nmask") else None
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)
        k_diffusion.sampling.torch = TorchHijack(p)
        params = inspect.signature(self.func).parameters
        kwargs = {name: getattr(p, name) for name in self.extra_params if hasattr(p, name) and name in params}
        if "eta" in params:
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            kwargs["eta"] = self.eta
        if len(self.extra_params) > 0:
            overrides = {
                "s_churn": (getattr(opts, "s_churn", p.s_churn), self.s_churn, "Sigma churn"),
                "s_tmin": (getattr(opts, "s_tmin", p.s_tmin), self.s_tmin, "Sigma tmin"),
                "s_tmax": (getattr(opts, "s_tmax", p.s_tmax) or self.s_tmax, self.s_tmax, "Sigma tmax"),
                "s_noise": (getattr(opts, "s_noise", p.s_noise), self.s_noise, "Sigma noise"),
            }
            for name, (value, default, label) in overrides.items():
                if name in kwargs and value != default:
                    kwargs[name] = value
                    setattr(p, name, value)
                    p.extra_generation_params[label] = value
        return kwargs

    def create_noise_sampler(self, x, sigmas, p):
        """modules/sd_samplers_common.py:Sampler.create_noise_sampler -- Brownian tree seeded per image."""
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        from k_diffusion.sampling import BrownianTreeNoiseSampler

        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        seeds = p.all_seeds[p.iteration * p.batch_size : (p.iteration + 1) * p.batch_size]
        return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        raise NotImplementedError()

    def add_infotext(self, p) -> None:
        """modules/sd_samplers_common.py:Sampler.add_infotext"""
        if self.model_wrap_cfg.padded_cond_uncond:
            p.extra_generation_params["Pad conds"] = True
        if self.model_wrap_cfg.padded_cond_uncond_v0:
            p.extra_generation_params["Pad conds v0"] = True
