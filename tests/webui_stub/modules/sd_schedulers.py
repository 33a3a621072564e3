"""Stand-in for modules/sd_schedulers.py (v1.10.1): the scheduler table (Automatic / Karras / Exponential / ...)
and the to_d override v1.10.1 installs into k_diffusion.sampling."""

from __future__ import annotations

import dataclasses
from typing import Any

import k_diffusion.sampling
import torch


def to_d(x, sigma, denoised):
    """modules/sd_schedulers.py:to_d -- no append_dims (sigma broadcasts); replaces k_diffusion.sampling.to_d."""
    return (x - denoised) / sigma


k_diffusion.sampling.to_d = to_d


@dataclasses.dataclass
class Scheduler:
    """modules/sd_schedulers.py:Scheduler"""

    name: str
    label: str
    function: Any
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list | None = None


def uniform(n, sigma_min, sigma_max, inner_model, device):
    """modules/sd_schedulers.py:uniform -- the model's own discretisation."""
    return inner_model.get_sigmas(n).to(device)


def sgm_uniform(n, sigma_min, sigma_max, inner_model, device):
    """modules/sd_schedulers.py:sgm_uniform -- n timesteps evenly between sigma_max and sigma_min, then 0."""
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigs = [inner_model.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]]
    return torch.FloatTensor([*sigs, 0.0]).to(device)


def simple_scheduler(n, sigma_min, sigma_max, inner_model, device):
    """modules/sd_schedulers.py:simple_scheduler"""
    ss = len(inner_model.sigmas) / n
    sigs = [float(inner_model.sigmas[-(1 + int(x * ss))]) for x in range(n)]
    return torch.FloatTensor([*sigs, 0.0]).to(device)


def normal_scheduler(n, sigma_min, sigma_max, inner_model, device, sgm=False, floor=False):
    """modules/sd_schedulers.py:normal_scheduler"""
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    timesteps = torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n)
    sigs = [inner_model.t_to_sigma(ts) for ts in timesteps]
    return torch.FloatTensor([*sigs, 0.0]).to(device)


# modules/sd_schedulers.py:schedulers -- same order; Align Your Steps, KL Optimal, DDIM and Beta are listed
# without a function here (selecting them raises)
def _not_covered(*args, **kwargs):
    raise NotImplementedError("this schedule type is not covered by the stand-in")


schedulers = [
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", uniform, need_inner_model=True),
    Scheduler("karras", "Karras", k_diffusion.sampling.get_sigmas_karras, default_rho=7.0),
    Scheduler("exponential", "Exponential", k_diffusion.sampling.get_sigmas_exponential),
    Scheduler("polyexponential", "Polyexponential", k_diffusion.sampling.get_sigmas_polyexponential, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", sgm_uniform, need_inner_model=True, aliases=["SGMUniform"]),
    Scheduler("kl_optimal", "KL Optimal", _not_covered),
    Scheduler("align_your_steps", "Align Your Steps", _not_covered),
    Scheduler("simple", "Simple", simple_scheduler, need_inner_model=True),
    Scheduler("normal", "Normal", normal_scheduler, need_inner_model=True),
    Scheduler("ddim", "DDIM", _not_covered, need_inner_model=True),
    Scheduler("beta", "Beta", _not_covered, need_inner_model=True),
]
schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
