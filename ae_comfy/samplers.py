"""ComfyUI's samplers (comfy/samplers.py KSAMPLER_NAMES + SAMPLER_NAMES at ComfyUI 0.3.64): each one's model calls
per step as an ae_lib.steps rule, or the reason A&E refuses it.

A run's sampler is known by its KSAMPLER's `sampler_function` (the same object for KSampler, KSamplerAdvanced
and SamplerCustom's sampler nodes), so the name comes from the function, not from a node widget. The call
patterns are read from comfy/k_diffusion/sampling.py and checked by the real-ComfyUI probe
(tests/comfy/test_samplers.py): A&E must move the latent once per step, on the call that sees the step's own x.
"""

from __future__ import annotations

from typing import Any

from ae_lib.refusals import sampler_refusal
from ae_lib.steps import CallRule

S, P2, P3, S3 = CallRule.SINGLE, CallRule.PAIRED, CallRule.TRIPLE, CallRule.THREE_STAGE

KNOWN: dict[str, CallRule] = {
    # one model call per step, on the sampler's x
    "euler": S, "euler_cfg_pp": S, "euler_ancestral": S, "euler_ancestral_cfg_pp": S, "lms": S,
    "dpmpp_2m": S, "dpmpp_2m_cfg_pp": S, "dpmpp_2m_sde": S, "dpmpp_2m_sde_gpu": S, "dpmpp_2m_sde_heun": S,
    "dpmpp_2m_sde_heun_gpu": S, "dpmpp_3m_sde": S, "dpmpp_3m_sde_gpu": S, "ddpm": S, "ipndm": S, "ipndm_v": S,
    "deis": S, "res_multistep": S, "res_multistep_cfg_pp": S, "res_multistep_ancestral": S,
    "res_multistep_ancestral_cfg_pp": S, "gradient_estimation": S, "gradient_estimation_cfg_pp": S, "er_sde": S,
    # the x it keeps is the model's prediction plus noise: the update acts through this call's prediction
    "lcm": S,
    # predictor-only SA-Solver evaluates its predicted x (the corrector then uses that prediction)
    "sa_solver": S,
    # ComfyUI's "ddim" is sample_euler with its own inpainting noise
    "ddim": S,
    # two calls per step (the second at a temporary x_2), one on a last step that ends at sigma 0
    "heun": P2, "dpm_2": P2, "dpm_2_ancestral": P2, "dpmpp_2s_ancestral": P2, "dpmpp_2s_ancestral_cfg_pp": P2,
    "dpmpp_sde": P2, "dpmpp_sde_gpu": P2, "seeds_2": P2,
    # three calls per step, two on the next-to-last, one on the last (sample_heunpp2)
    "heunpp2": P3,
    # three calls per step (x, x_2, x_3), one on the last
    "seeds_3": S3,
}
# refused samplers -> their reason in ae_lib.refusals
REFUSED: dict[str, str] = {"dpm_fast": "dpm_fast", "dpm_adaptive": "dpm_adaptive", "uni_pc": "uni_pc",
                           "uni_pc_bh2": "uni_pc", "sa_solver_pece": "sa_solver_pece"}
# Functions whose __name__ is not "sample_" + the sampler's name (comfy/samplers.py: ksampler, sampler_object).
FUNCTION_ALIASES = {
    "dpm_fast_function": "dpm_fast",
    "dpm_adaptive_function": "dpm_adaptive",
    "sample_unipc": "uni_pc",
    "sample_unipc_bh2": "uni_pc_bh2",
}


def sampler_name(sampler: Any) -> str:
    """The ComfyUI sampler name of a KSAMPLER object (by its sampler_function), or the function's own name."""
    function = getattr(sampler, "sampler_function", None)
    name = getattr(function, "__name__", None) or type(sampler).__name__
    return FUNCTION_ALIASES.get(name, name.removeprefix("sample_"))


def rule(name: str) -> CallRule | None:
    return KNOWN.get(name)


def refusal(name: str) -> str | None:
    """Why A&E stands down for this sampler, or None."""
    if name in KNOWN:
        return None
    return sampler_refusal(name, REFUSED.get(name), "euler, dpmpp_2m or heun")
