"""One A&E step on a diffusers UNet: the piece every diffusers host calls (this package's pipeline hooks, and
hosts with their own loop such as SD.Next), mapping onto ae_lib's per-step driver.

`DiffusersStep(unet, params, schedule)(index, latents, timestep, cond, scale=...)` runs the plan check, the
grad scope, z = scale * latents, `engine.step`, the in-place update of `latents` (the caller's own tensor, so
the scheduler continues from it) and the record of each image's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ae_lib.autograd import grad_scope
from ae_lib.capture import target_grid
from ae_lib.engine import AttendExcite, ImageTarget, StepResult
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule
from ae_lib.window import ImageWindow, record_step


def pipeline_schedule(params: AEParams, steps: int, calls: int) -> Schedule:
    """The schedule over the denoising loop's `calls` iterations for `steps` requested steps.

    Positions (steps altered, refinement steps) are fractions of the requested steps; step sizes are the
    linspace over the loop's iterations, as diffusers' A&E pipeline has it. They differ only for PNDM, whose
    loop runs steps + 1 UNet calls (50 steps: altered i < 25, refinement at 0/10/20, sizes over 51)."""
    positions = Schedule.from_params(params, steps)
    sizes = Schedule.from_params(params, calls).step_sizes
    return Schedule(calls, positions.alter_until, positions.thresholds, sizes, positions.max_refine)


def take_rows(value: Any, rows: list[int], batch: int, chunks: int) -> Any:
    """The conditional rows of a UNet argument: tensors batched as (chunks x batch) or batch, nested too."""
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        if value.shape[0] == batch * chunks:
            return value[[(chunks - 1) * batch + r for r in rows]]
        if value.shape[0] == batch:
            return value[rows]
        return value
    if isinstance(value, Mapping):
        return {k: take_rows(v, rows, batch, chunks) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(take_rows(v, rows, batch, chunks) for v in value)
    return value


@dataclass
class DiffusersStep:
    """A&E over one sampling run of a diffusers UNet; `windows` holds each image's scores."""

    unet: torch.nn.Module
    params: AEParams
    schedule: Schedule
    targets: Sequence[ImageTarget | None]
    windows: dict[int, ImageWindow] = field(default_factory=dict)
    engine: AttendExcite = field(init=False)

    def __post_init__(self) -> None:
        self.engine = AttendExcite(self.unet, self.params, self.schedule)

    def __call__(
        self,
        index: int,
        latents: torch.Tensor,
        unet_kwargs: Mapping[str, Any],
        scale: float = 1.0,
        chunks: int = 1,
    ) -> StepResult | None:
        """A&E at loop step `index`: moves `latents` (B, C, H, W) in place; None when the step is not altered.

        `unet_kwargs`: the UNet's arguments of this step except `sample` (timestep, encoder_hidden_states, ...),
        batched as the pipeline batches them: `chunks` = 2 under classifier-free guidance (negative rows first),
        else 1. `scale`: the scheduler's model-input scale (UNet input = scale * latents)."""
        if self.schedule.plan(index) is None or all(t is None for t in self.targets):
            return None
        batch = latents.shape[0]
        z = latents if scale == 1.0 else latents * scale

        def run_cond(z_rows: torch.Tensor, rows: list[int]) -> object:
            return self.unet(z_rows, **take_rows(dict(unet_kwargs), rows, batch, chunks))

        with grad_scope(self.unet):
            result = self.engine.step(index, z, run_cond, self.targets)
        if result is None:
            return None
        if scale == 1.0:
            latents.copy_(result.latent)
        else:
            latents.add_(((result.latent - z).double() / scale).to(latents.dtype))
        grid = target_grid(tuple(latents.shape[-2:]), self.params.attention_res)
        record_step(self.windows, result, self.targets, grid)
        return result
