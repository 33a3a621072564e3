"""Which diffusers schedulers A&E serves, and the scale between the pipeline's latent and the UNet's input.

A&E moves the latent once per denoising step, on the UNet call that sees the step's own latent. Every scheduler
of the SD/SDXL pipelines' `KarrasDiffusionSchedulers` is listed: the ones that call the UNet once per step are
known (tests/diffusers/check_schedulers.py probes each), the ones that call it twice per step are refused (the
second call is at a temporary latent that the step then discards). Anything else is refused as unverified.
"""

from __future__ import annotations

from typing import Any

import torch

KNOWN = frozenset({
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "EDMEulerScheduler", "LCMScheduler", "TCDScheduler",
})
TWO_CALLS = frozenset({
    "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler",
})


def refusal(scheduler: Any) -> str | None:
    """Why A&E cannot run with this scheduler, or None when it can."""
    name = type(scheduler).__name__
    if name in KNOWN:
        return None
    if name in TWO_CALLS:
        return (f"{name} calls the UNet twice per step (the second call at a temporary latent the step discards); "
                "A&E needs one call per step on the step's own latent: use e.g. EulerDiscreteScheduler or DDIM")
    return f"{name} is not a scheduler A&E has been verified with (known: {', '.join(sorted(KNOWN))})"


def input_scale(scheduler: Any, like: torch.Tensor, timestep: Any) -> float:
    """c with UNet input = c * latent at this step (1 for DDIM/PNDM..., 1/sqrt(1 + sigma^2) for Euler-type)."""
    probe = scheduler.scale_model_input(torch.ones_like(like[:1]), timestep)
    scale = float(probe.flatten()[0])
    if not bool((probe == probe.flatten()[0]).all()):
        msg = f"{type(scheduler).__name__}.scale_model_input is not a uniform scaling of the latent"
        raise ValueError(msg)
    return scale
