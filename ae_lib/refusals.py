"""Why A&E stands down, in the same words on every host: the texts a glue shows when it refuses a run.

A glue decides (by what the running host has) and says why with these; `who` is what a host calls the other
party that changed the model ("feature" in a WebUI, "node" in ComfyUI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ATTN2_REPLACED = ("another {who} replaces the UNet's cross-attention (attn2, e.g. IP-Adapter); its maps are not "
                  "visible")
FORWARD_WRAPPED = ("another {who} wraps the UNet's forward (model_function_wrapper, e.g. MultiDiffusion's tiles); "
                   "A&E's pass would not run the model the sampler runs")
NO_CROSS_ATTENTION = ("{model} has no UNet cross-attention (attn2) layers, which A&E needs (SD1.5/SDXL UNets): Flux, "
                      "Chroma, SD3, Wan, Qwen-Image, Lumina, Z-Image and the other transformers have none")

# Samplers A&E refuses on every host, by a host-neutral key (each glue maps its own names to these).
UNIPC = "UniPC evaluates the model on a rescaled copy of x and replaces each step's x by its corrector, so a changed " \
        "latent is discarded"
SAMPLER_REASONS: dict[str, str] = {
    "uni_pc": UNIPC,
    "dpm_fast": "DPM fast has no fixed grid of steps (1 to 3 model calls per step)",
    "dpm_adaptive": "DPM adaptive chooses its own steps and retries rejected ones",
    "restart": "Restart re-noises the latent in extra segments outside the step grid",
    "sa_solver_pece": "SA-Solver PECE calls the model once on the first step and twice on the others (predicted "
    "and corrected x); A&E has no rule for that pattern",
    "rectified_flow": "{name} is a rectified-flow sampler: on SD1.5/SDXL its steps are not finite",
}
UNKNOWN_SAMPLER = "A&E does not know its model calls per step, so it cannot move each step's own latent once"


def options_problem(model_options: Mapping[str, Any], who: str) -> str | None:
    """Why A&E cannot see or repeat the model a sampler runs, from ComfyUI-style model options (ComfyUI's, and
    Forge-family UNet patchers'), or None."""
    transformer = model_options.get("transformer_options", {}) or {}
    if (transformer.get("patches_replace", {}) or {}).get("attn2"):
        return ATTN2_REPLACED.format(who=who)
    if model_options.get("model_function_wrapper") is not None:
        return FORWARD_WRAPPED.format(who=who)
    return None


def no_cross_attention(model: str) -> str:
    return NO_CROSS_ATTENTION.format(model=model)


def sampler_refusal(name: str, reason_key: str | None, examples: str) -> str:
    """ "sampler 'X' is not supported: <why>. Use e.g. <examples>"; reason_key None: a sampler A&E does not know."""
    reason = SAMPLER_REASONS[reason_key].format(name=name) if reason_key is not None else UNKNOWN_SAMPLER
    return f"sampler '{name}' is not supported: {reason}. Use e.g. {examples}"
