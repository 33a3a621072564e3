"""Which model call of a WebUI sampler is a step's main call, and where a run sits in the full schedule.

A&E must move the latent once per sampler step, on the call that sees the step's own latent (the one
the sampler keeps using afterwards); see webui-host-a1111.md §2.6. CFGDenoiser.step counts model calls
(reset per run by Sampler.initialize), so each sampler gets a rule from call index to step index.
"""

from __future__ import annotations

from dataclasses import dataclass

# modules/sd_samplers_kdiffusion.py:samplers_k_diffusion — two model calls per step (x_2 is a temporary),
# one on the last step; that last step is never inside the first-half window by default.
PAIRED = {"Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ SDE"}
# Forge's k_diffusion/sampling.py:sample_heunpp2 — three calls per step, two on the next-to-last, one on the last.
TRIPLE = {"HeunPP2"}
# modules/sd_samplers_timesteps_impl.py:plms — two calls on the first step (x and x_prev), then one.
PLMS = {"PLMS"}
REFUSED = {
    "UniPC": "UniPC discards a changed latent after each model call (its predictor rebinds x_t)",
    "DPM fast": "DPM fast has no fixed grid of steps (1 to 3 model calls per step)",
    "DPM adaptive": "DPM adaptive chooses its own steps and retries rejected ones",
    "Restart": "Restart re-noises the latent in extra segments outside the step grid",
}
TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS", "UniPC"}


def refusal(sampler_name: str) -> str | None:
    reason = REFUSED.get(sampler_name)
    if reason is None:
        return None
    return f"sampler '{sampler_name}' is not supported: {reason}. Use e.g. Euler, DPM++ 2M or DDIM"


def step_of_call(sampler_name: str, call: int, run_steps: int = 0) -> int | None:
    """The sampler step whose main call is model call `call` (0-based), or None for other calls.

    `run_steps`: the steps of this sampling run (needed where the calls per step change near the end).
    """
    if sampler_name in PAIRED:
        return call // 2 if call % 2 == 0 else None
    if sampler_name in TRIPLE:
        return _triple_step(call, run_steps)
    if sampler_name in PLMS:
        if call == 1:
            return None
        return 0 if call == 0 else call - 1
    return call


def _triple_step(call: int, run_steps: int) -> int | None:
    calls = [3] * max(run_steps - 2, 0) + [2, 1][-min(run_steps, 2):] if run_steps > 0 else [3]
    first = 0
    for step, n in enumerate(calls):
        if call < first + n:
            return step if call == first else None
        first += n
    return None


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
