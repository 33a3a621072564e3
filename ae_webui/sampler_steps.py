"""Which model call of a WebUI sampler is a step's main call, and where a run sits in the full schedule.

A&E must move the latent once per sampler step, on the call that sees the step's own latent (the one
the sampler keeps using afterwards); see webui-host-a1111.md §2.6. CFGDenoiser.step counts model calls
(reset per run by Sampler.initialize), so each sampler gets a rule from call index to step index.
"""

from __future__ import annotations

from dataclasses import dataclass

from ae_lib.refusals import sampler_refusal
from ae_lib.steps import CallRule
from ae_lib.steps import step_of_call as rule_step_of_call

S, P2, P3, PLMS_RULE = CallRule.SINGLE, CallRule.PAIRED, CallRule.TRIPLE, CallRule.PLMS
EARLY3 = CallRule.EARLY_TRIPLE
# Every sampler name the four WebUIs list (A1111 v1.10.1, Forge, Forge Classic, Forge Neo), by its calls per
# step as the real-host probe measures them (tests/realhost/test_samplers.py). A name not here is refused.
KNOWN: dict[str, CallRule] = {
    # modules/sd_samplers_kdiffusion.py:samplers_k_diffusion (all four hosts share most names)
    "Euler": S, "Euler a": S, "LMS": S, "DPM++ 2M": S, "DPM++ 2M SDE": S, "DPM++ 2M SDE Heun": S,
    "DPM++ 3M SDE": S, "LCM": S,
    # two model calls per step (x_2 is a temporary), one on the last step
    "Heun": P2, "DPM2": P2, "DPM2 a": P2, "DPM++ 2S a": P2, "DPM++ SDE": P2,
    # modules/sd_samplers_timesteps.py
    "DDIM": S, "DDIM CFG++": S, "PLMS": PLMS_RULE,
    # Forge (modules/sd_samplers_kdiffusion.py): sample_heunpp2 makes 3/3/.../2/1 calls; the rest one each
    "HeunPP2": P3, "IPNDM": S, "IPNDM_V": S, "DEIS": S, "DDPM": S,
    # Forge Neo (modules_forge/packages/k_diffusion/sampling.py, modules_forge/forge_alter_samplers.py)
    "ER SDE": S, "Res Multistep": S, "DPM++ 2M CFG++": S, "Euler a CFG++": S, "Euler CFG++": S,
    "Kohaku LoNyu Yog": EARLY3,  # model(x), model(-x), model(x3) on steps i <= n/2, then model(x) alone
    # Forge Classic's AlterSampler spells Euler a "Euler A" (ldm_patched sample_euler_ancestral) and lists it only
    # with a scheduler: modules_forge/forge_alter_samplers.py
    "Euler A Turbo": S, "Euler A SGMUniform": S,
}
# Forge Classic lists the scheduler in the name ("DPM++ 2M Karras"): the same sampler on another sigma grid.
SCHEDULER_SUFFIXES = (" Karras", " Exponential", " SGMUniform", " Turbo")
# refused samplers -> their reason in ae_lib.refusals. Neo's sample_dpmpp_2s_ancestral_RF (two calls per step)
# takes sigmas in [0, 1]: log((1 - sigma) / sigma) is NaN from the first step on the SD1.5/SDXL models A&E runs on
# ("Flux Realistic" with forbidden_knowledge).
REFUSED = {"UniPC": "uni_pc", "DPM fast": "dpm_fast", "DPM adaptive": "dpm_adaptive", "Restart": "restart",
           "DPM++ 2s a RF": "rectified_flow", "Flux Realistic": "rectified_flow"}
TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS", "UniPC"}


def base_name(sampler_name: str) -> str:
    """The sampler without a Classic-style scheduler suffix ("DPM++ 2M SDE Heun Karras" -> "DPM++ 2M SDE Heun")."""
    for suffix in SCHEDULER_SUFFIXES:
        if sampler_name.endswith(suffix) and sampler_name.removesuffix(suffix) in {*KNOWN, *REFUSED}:
            return sampler_name.removesuffix(suffix)
    return sampler_name


def rule(sampler_name: str) -> CallRule | None:
    return KNOWN.get(base_name(sampler_name))


def refusal(sampler_name: str) -> str | None:
    name = base_name(sampler_name)
    if name in KNOWN and name not in REFUSED:
        return None
    return sampler_refusal(sampler_name, REFUSED.get(name), "Euler, DPM++ 2M or DDIM")


def step_of_call(sampler_name: str, call: int, run_steps: int = 0) -> int | None:
    """The sampler step whose main call is model call `call` (0-based), or None for other calls."""
    found = rule(sampler_name)
    return None if found is None else rule_step_of_call(found, call, run_steps)


@dataclass(frozen=True)
class RunPosition:
    """This sampling run within the full noise schedule of `total` steps: it starts at `start`."""

    total: int
    start: int


def kdiffusion_position(steps: int, t_enc: int | None) -> RunPosition:
    """k-diffusion: txt2img runs all `steps`; img2img runs sigmas[steps - t_enc - 1:] (sample_img2img)."""
    if t_enc is None:
        return RunPosition(steps, 0)
    return RunPosition(steps, max(steps - t_enc - 1, 0))


def timesteps_position(n_timesteps: int, t_enc: int | None) -> RunPosition:
    """DDIM/PLMS loop len(timesteps) - 1 times; img2img uses timesteps[:t_enc] (CompVisSampler.sample_img2img)."""
    total = max(n_timesteps - 1, 1)
    if t_enc is None:
        return RunPosition(total, 0)
    return RunPosition(total, max(n_timesteps - t_enc, 0))
