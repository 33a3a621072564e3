"""Stand-in for modules/sd_samplers.py (v1.10.1): the sampler registry, create_sampler and the sampler/scheduler
name normalisation processing applies first (fix_p_invalid_sampler_and_scheduler)."""

from __future__ import annotations

import functools

from modules import sd_samplers_common, sd_samplers_kdiffusion, sd_samplers_timesteps, sd_schedulers, shared

# modules/sd_samplers.py:all_samplers -- k-diffusion first (so samplers[0] is 'DPM++ 2M'), then timesteps; LCM and
# Restart are not covered
all_samplers = [*sd_samplers_kdiffusion.samplers_data_k_diffusion, *sd_samplers_timesteps.samplers_data_timesteps]
all_samplers_map = {x.name: x for x in all_samplers}
samplers: list[sd_samplers_common.SamplerData] = all_samplers
samplers_for_img2img: list[sd_samplers_common.SamplerData] = all_samplers
samplers_map: dict[str, str] = {}


def find_sampler_config(name: str | None):
    """modules/sd_samplers.py:find_sampler_config -- None -> the first sampler."""
    return all_samplers_map.get(name) if name is not None else all_samplers[0]


def create_sampler(name: str, model):
    """modules/sd_samplers.py:create_sampler -- a NEW sampler object every call, with .config set."""
    config = find_sampler_config(name)
    assert config is not None, f"bad sampler name: {name}"
    if model.is_sdxl and config.options.get("no_sdxl", False):
        raise Exception(f"Sampler {config.name} is not supported for SDXL")
    sampler = config.constructor(model)
    sampler.config = config
    return sampler


def set_samplers() -> None:
    """modules/sd_samplers.py:set_samplers -- lower-case names and aliases -> name."""
    samplers_map.clear()
    for sampler in all_samplers:
        samplers_map[sampler.name.lower()] = sampler.name
        for alias in sampler.aliases:
            samplers_map[alias.lower()] = sampler.name


def visible_sampler_names() -> list[str]:
    return [x.name for x in samplers if x.name not in shared.opts.hide_samplers]


def visible_samplers() -> list:
    return [x for x in samplers if x.name not in shared.opts.hide_samplers]


@functools.cache
def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic=True):
    """modules/sd_samplers.py:get_sampler_and_scheduler -- 'Euler Karras' -> ('Euler', 'Karras'); unknown sampler
    -> samplers[0]; a scheduler equal to the sampler's default becomes 'Automatic' when convert_automatic."""
    default_sampler = samplers[0]
    found_scheduler = sd_schedulers.schedulers_map.get(scheduler_name, sd_schedulers.schedulers[0])
    name = sampler_name or default_sampler.name
    for scheduler in sd_schedulers.schedulers:
        for option in [scheduler.label, scheduler.name, *(scheduler.aliases or [])]:
            if name.endswith(" " + option):
                found_scheduler = scheduler
                name = name[0:-(len(option) + 1)]
                break
    sampler = all_samplers_map.get(name, default_sampler)
    if convert_automatic and sampler.options.get("scheduler", None) == found_scheduler.name:
        found_scheduler = sd_schedulers.schedulers[0]
    return sampler.name, found_scheduler.label


def get_sampler_from_infotext(d: dict):
    """modules/sd_samplers.py:get_sampler_from_infotext"""
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[0]


def get_scheduler_from_infotext(d: dict):
    """modules/sd_samplers.py:get_scheduler_from_infotext"""
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[1]


def fix_p_invalid_sampler_and_scheduler(p) -> None:
    """modules/sd_samplers.py:fix_p_invalid_sampler_and_scheduler -- run by process_images before anything else."""
    p.sampler_name, p.scheduler = get_sampler_and_scheduler(p.sampler_name, p.scheduler, convert_automatic=False)


set_samplers()
