"""Stand-in for modules/sd_samplers_timesteps_impl.py (v1.10.1): DDIM, DDIM CFG++ and PLMS loops, rewritten.
Call pattern as v1.10.1: len(timesteps) - 1 iterations from the last timestep down; DDIM calls the model once per
iteration; PLMS twice in its first iteration (pseudo improved Euler) and once afterwards; the model is always
called as model(x, timestep * ones(B), **extra_args) and callback({'x', 'i', 'sigma': 0, 'sigma_hat': 0,
'denoised'}) runs after each iteration. UniPC is listed but not covered."""

from __future__ import annotations

import k_diffusion.sampling
import torch


def _schedule(model, x, timesteps):
    # alphas at each timestep; "previous" alphas at the timestep before it (index 0 for the first), in float64
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    alphas = alphas_cumprod[timesteps]
    prev_index = torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))
    alphas_prev = alphas_cumprod[prev_index].to(torch.float64 if x.device.type != "mps" else torch.float32)
    return alphas, alphas_prev, torch.sqrt(1 - alphas)


def _ddim_like(model, x, timesteps, extra_args, callback, eta, use_uncond_direction):
    alphas, alphas_prev, sqrt_one_minus_alphas = _schedule(model, x, timesteps)
    a_np, ap_np = alphas.cpu().double(), alphas_prev.cpu().double()
    sigmas = eta * torch.sqrt((1 - ap_np) / (1 - a_np) * (1 - a_np / ap_np))
    extra_args = {} if extra_args is None else extra_args
    ones_b = x.new_ones(x.shape[0])
    ones_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * ones_b, **extra_args)
        direction_eps = model.last_noise_uncond if use_uncond_direction else e_t
        a_t = alphas[index].item() * ones_x
        a_prev = alphas_prev[index].item() * ones_x
        sigma_t = sigmas[index].item() * ones_x
        pred_x0 = (x - sqrt_one_minus_alphas[index].item() * ones_x * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * direction_eps
        noise = sigma_t * k_diffusion.sampling.torch.randn_like(x)  # TorchHijack -> p.rng
        x = a_prev.sqrt() * pred_x0 + dir_xt + noise
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": pred_x0})
    return x


@torch.no_grad()
def ddim(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    """modules/sd_samplers_timesteps_impl.py:ddim"""
    return _ddim_like(model, x, timesteps, extra_args, callback, eta, use_uncond_direction=False)


@torch.no_grad()
def ddim_cfgpp(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    """modules/sd_samplers_timesteps_impl.py:ddim_cfgpp -- CFG scale / 12.5, direction from the uncond noise."""
    model.cond_scale_miltiplier = 1 / 12.5
    model.need_last_noise_uncond = True
    return _ddim_like(model, x, timesteps, extra_args, callback, eta, use_uncond_direction=True)


@torch.no_grad()
def plms(model, x, timesteps, extra_args=None, callback=None, disable=None):
    """modules/sd_samplers_timesteps_impl.py:plms -- Adams-Bashforth on eps with up to 3 previous eps."""
    alphas, alphas_prev, sqrt_one_minus_alphas = _schedule(model, x, timesteps)
    extra_args = {} if extra_args is None else extra_args
    ones_b = x.new_ones([x.shape[0]])
    ones_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps: list[torch.Tensor] = []

    def step_from(latent, eps, index):
        # v1.10.1's closure reads the loop's current x; `latent` is that same object here
        a_t = alphas[index].item() * ones_x
        a_prev = alphas_prev[index].item() * ones_x
        pred_x0 = (latent - sqrt_one_minus_alphas[index].item() * ones_x * eps) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * eps, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * ones_b
        t_next = timesteps[max(index - 1, 0)].item() * ones_b
        e_t = model(x, ts, **extra_args)
        if len(old_eps) == 0:  # first step: second model call at the Euler estimate
            x_prev, _ = step_from(x, e_t, index)
            e_t_prime = (e_t + model(x_prev, t_next, **extra_args)) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, pred_x0 = step_from(x, e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": pred_x0})
    return x


def unipc(model, x, timesteps, extra_args=None, callback=None, disable=None, is_img2img=False):
    """modules/sd_samplers_timesteps_impl.py:unipc -- listed so 'UniPC' resolves; sampling is not covered."""
    raise NotImplementedError("UniPC is listed by the stand-in but not implemented")
