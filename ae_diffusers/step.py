"""One A&E step on a diffusers UNet: the piece every diffusers host calls (this package's pipeline hooks, and
hosts with their own loop such as SD.Next), mapping the UNet's call onto ae_lib's step driver.

`DiffusersStep(unet, params, schedule, targets)(index, latents, unet_kwargs, scale=..., chunks=...)` gives
`ae_lib.driver.StepDriver` the conditional rows of the UNet's own arguments as its run_cond; the driver runs the
plan check, the grad scope, z = scale * latents, the engine, the in-place update of `latents` (the caller's own
tensor, so the scheduler continues from it), each image's record, the warnings and the end-of-window lines.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ae_lib.driver import StepDriver
from ae_lib.engine import AttendExcite, ImageTarget, StepResult
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule
from ae_lib.window import ImageWindow

HINT = "load the pipeline in float32 if this repeats"


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


def unet_arguments(unet: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The UNet call's arguments by name (`sample`, `timestep`, `encoder_hidden_states`, ...)."""
    bound = dict(inspect.signature(unet.forward).bind(*args, **kwargs).arguments)
    extra = bound.pop("kwargs", {}) or {}
    return {**bound, **extra}


def with_sample(args: tuple, kwargs: dict, sample: torch.Tensor) -> tuple[tuple, dict]:
    """A UNet forward pre-hook's answer: the call's arguments with `sample` replaced."""
    if args:
        return (sample, *args[1:]), kwargs
    return args, {**kwargs, "sample": sample}


def first_index(timesteps: torch.Tensor, timestep: Any) -> int:
    """The loop position of the UNet call's timestep in the scheduler's timesteps (img2img starts part-way)."""
    t = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
    hits = (timesteps.float() == t).nonzero()
    if len(hits) == 0:
        msg = f"the UNet's timestep {t:g} is not one of the scheduler's timesteps"
        raise ValueError(msg)
    return int(hits[0])


def _assign(x: torch.Tensor, z: torch.Tensor, z_new: torch.Tensor) -> None:
    """Where the latents are the UNet's input (scale 1): they become the engine's latent."""
    x.copy_(z_new)


class DiffusersStep:
    """A&E over one sampling run of a diffusers UNet; `windows` holds each image's record.

    `targets`: each image's target (a call may give its own, e.g. under prompt scheduling); the keyword
    arguments are StepDriver's (where the host warns, its interrupt and progress, the maps it keeps). Warnings go
    to `messages` unless `warn` is given. `running` is true during A&E's own UNet pass (a hook on that UNet skips
    it)."""

    def __init__(
        self,
        unet: torch.nn.Module,
        params: AEParams,
        schedule: Schedule,
        targets: Sequence[ImageTarget | None] = (),
        warn: Callable[[str], None] | None = None,
        hint: str = HINT,
        **driver: Any,
    ) -> None:
        self.unet, self.params, self.targets = unet, params, targets
        self.messages: list[str] = []
        self.running = False
        self.driver = StepDriver(unet, params, schedule, warn or self._warn, hint, **driver)

    @property
    def schedule(self) -> Schedule:
        return self.driver.schedule

    @property
    def engine(self) -> AttendExcite:
        return self.driver.engine

    @property
    def windows(self) -> dict[int, ImageWindow]:
        return self.driver.images

    @property
    def altered(self) -> list[int]:
        return self.driver.altered

    def __call__(
        self,
        index: int,
        latents: torch.Tensor,
        unet_kwargs: Mapping[str, Any],
        scale: float = 1.0,
        chunks: int = 1,
        targets: Sequence[ImageTarget | None] | None = None,
    ) -> StepResult | None:
        """A&E at loop step `index`: moves `latents` (B, C, H, W) in place; None when the step is not altered.

        `unet_kwargs`: the UNet's arguments of this step except `sample` (timestep, encoder_hidden_states, ...),
        batched as the pipeline batches them: `chunks` = 2 under classifier-free guidance (negative rows first),
        else 1. `scale`: the scheduler's model-input scale (UNet input = scale * latents)."""
        targets = self.targets if targets is None else targets
        if not self.driver.alters(index) or all(t is None for t in targets):
            return None
        batch = latents.shape[0]
        arguments = dict(unet_kwargs)

        def run_cond(z_rows: torch.Tensor, rows: list[int]) -> object:
            return self.unet(z_rows, **take_rows(arguments, rows, batch, chunks))

        self.running = True
        try:
            if scale == 1.0:
                return self.driver.step(index, latents, None, run_cond, targets, _assign)
            factor = torch.tensor(scale, dtype=torch.float64, device=latents.device)
            return self.driver.step(index, latents, factor, run_cond, targets)
        finally:
            self.running = False

    def _warn(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)
