"""Sampling with and without A&E on the tiny models, through k-diffusion's Euler loop and the real engine.

The model function does what the WebUI's CFG denoiser hook does: on each step inside the window it runs
the engine on z = x * c_in (the UNet's input) and writes the update into the sampler's own x in place,
before the classifier-free-guidance pass. The plain run evaluates the same scores without updating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch

from ae_demo import kdiff
from ae_demo.tiny import TinyLatentDiffusion, TinyTextEncoder, make_unet, prompt_columns
from ae_lib.capture import target_grid
from ae_lib.engine import AttendExcite, ImageTarget
from ae_lib.latents import apply_model_update, to_model_latent
from ae_lib.objectives import make
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule
from ae_lib.targets import build_target
from ae_lib.tokens import TokenRule


@dataclass
class DemoRun:
    labels: list[str]
    scores: list[list[float]] = field(default_factory=list)  # per altered step, per subject
    first_maps: torch.Tensor | None = None  # (S, h, w) at the first altered step
    last_maps: torch.Tensor | None = None  # at the end of the window
    latent: torch.Tensor | None = None
    refine_iterations: int = 0


@lru_cache(maxsize=2)
def models(seed: int) -> tuple[TinyLatentDiffusion, TinyTextEncoder]:
    return TinyLatentDiffusion(make_unet("sd1", seed)).eval(), TinyTextEncoder(seed).eval()


def _target(prompt: str, subjects: str, groups: str = "", objective: str | None = None) -> ImageTarget:
    columns = prompt_columns(prompt)
    found = build_target(columns, subjects, groups, TokenRule.REFERENCE, objective)
    if not found.ok:
        raise SystemExit(f"subjects: {found.message()}")
    return found.target


def sample(
    prompt: str,
    subjects: str,
    steps: int,
    seed: int,
    use_ae: bool,
    size: int = 16,
    cfg: float = 7.5,
    objective: str | None = None,
    groups: str = "",
) -> DemoRun:
    k = kdiff.load()
    ldm, encoder = models(seed)
    cond, uncond = encoder.encode([prompt]), encoder.encode([""])
    denoiser = k.external.CompVisDenoiser(ldm)
    sigmas = denoiser.get_sigmas(steps)
    x = torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(seed)) * sigmas[0]
    params = AEParams(enabled=True, subjects=subjects, objective=objective or "excite", groups=groups)
    engine = AttendExcite(ldm.diffusion_model, params, Schedule.from_params(params, steps), keep_maps=True,
                          objective=make(objective, params))
    target = _target(prompt, subjects, groups, objective)
    run = DemoRun(list(target.labels))
    grid = target_grid((size, size))
    calls = iter(range(10**9))

    def model(x: torch.Tensor, sigma: torch.Tensor, **_: object) -> torch.Tensor:
        step = next(calls)  # Euler: one model call per step
        if engine.schedule.plan(step) is not None:
            z = to_model_latent(x, sigma)

            def run_cond(zz: torch.Tensor, rows: list[int]) -> torch.Tensor:
                return ldm.apply_model(zz, denoiser.sigma_to_t(sigma[rows]), cond[rows])

            if use_ae:
                result = engine.step(step, z, run_cond, [target])
                apply_model_update(x, z, result.latent, sigma)
                scores, maps = result.scores[0], result.maps[0]
                run.refine_iterations += result.refine_iterations.get(0, 0)
            else:
                ev = engine.evaluate(z, [0], run_cond, [target], grid)
                scores, maps = ev.scores[0], ev.maps[0]
            run.scores.append(scores)
            run.last_maps = engine.objective.maps(maps, target, grid)
            run.first_maps = run.last_maps if run.first_maps is None else run.first_maps
        out = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([uncond, cond]))
        out_uncond, out_cond = out.chunk(2)
        return out_uncond + cfg * (out_cond - out_uncond)

    run.latent = k.sampling.sample_euler(model, x, sigmas, disable=True)
    return run
