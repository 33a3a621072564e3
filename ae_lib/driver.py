"""One A&E step as every host glue runs it: the plan check, the grad scope, z from the sampler's x, the engine's
step, the in-place update of x, the window record, the warnings and the end-of-window lines.

A glue gives, per step, the sampler's own latent x (moved in place), how x maps to the latent the UNet sees
(`scale`: z = x * scale, None where x is z), a run_cond (ae_lib.engine), each image's target, and its grad scope
(ae_lib.autograd.grad_scope, or its host's). Everything about sampler calls and conditioning stays in the glue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn

from ae_lib.autograd import grad_scope
from ae_lib.engine import AttendExcite, RunCond, StepResult
from ae_lib.latents import apply_scaled_update, scale_to_z
from ae_lib.objectives import ImageTarget, make
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule
from ae_lib.window import ImageWindow, end_of_window_lines, record_step

LOG = logging.getLogger("attend_and_excite")
SKIPPED = "half precision: {message} ({hint})"
Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]  # (x, z, z_new): write the update into x


class StepDriver:
    """A&E over one sampling run of a host: `step` once per sampler step, on the call that sees the step's x.

    `warn(text)`: how the host tells the user (generation info, node text); `hint`: what the user can do when a
    half-precision update was skipped. `should_stop()`: the host's interrupt; `progress(i, limit)`: refinement
    progress for the host's UI; `objective`: a name overriding the params' own (the params' by default, so a
    glue cannot run the paper's objective while its user chose another); `log_refinement`: refinement's start
    and count as console lines (for a host whose UI does not show `progress`). `total_steps`: the run's full
    schedule length, or its Schedule where a host's loop places steps otherwise (diffusers' PNDM loop:
    ae_diffusers.step.pipeline_schedule).
    """

    def __init__(
        self,
        unet: nn.Module,
        params: AEParams,
        total_steps: int | Schedule,
        warn: Callable[[str], None],
        hint: str,
        keep_maps: bool = False,
        checkpoint: bool = False,
        objective: str | None = None,
        images: dict[int, ImageWindow] | None = None,
        scope: Callable[[nn.Module], AbstractContextManager[None]] = grad_scope,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
        log_refinement: bool = True,
    ) -> None:
        schedule = total_steps if isinstance(total_steps, Schedule) else Schedule.from_params(params, total_steps)
        self.engine = AttendExcite(unet, params, schedule, keep_maps=keep_maps, checkpoint=checkpoint,
                                   objective=make(objective or params.objective, params))
        self.warn, self.hint, self.scope = warn, hint, scope
        self.should_stop, self.progress, self.log_refinement = should_stop, progress, log_refinement
        self.images: dict[int, ImageWindow] = {} if images is None else images
        self.altered: list[int] = []  # full-schedule indices where the engine ran
        self.refined: dict[int, int] = {}  # refinement iterations at each refined index

    @property
    def schedule(self) -> Schedule:
        return self.engine.schedule

    def alters(self, index: int) -> bool:
        """Whether full-schedule step `index` is in the window (a glue may skip building its conditioning)."""
        return self.schedule.plan(index) is not None

    def step(
        self,
        index: int,
        x: torch.Tensor,
        scale: torch.Tensor | None,
        run_cond: RunCond,
        targets: Sequence[ImageTarget | None],
        update: Update | None = None,
    ) -> StepResult | None:
        """A&E at step `index`: x (the sampler's latent) is moved in place; None when nothing was altered.

        `update`: how the update is written into x, where a host has its own (default x += (z_new - z) / scale)."""
        if not self.alters(index):
            return None
        with self.scope(self.engine.unet):
            z = scale_to_z(x, scale)
            result = self.engine.step(index, z, run_cond, targets, self.should_stop, self._on_refine(index))
        if result is None:
            return None
        if update is None:
            apply_scaled_update(x, z, result.latent, scale)  # in the host's own grad mode: x is its tensor
        else:
            update(x, z, result.latent)
        self._record(index, result, targets, (x.shape[-2], x.shape[-1]))
        return result

    def _on_refine(self, index: int) -> Callable[[int, int], None]:
        def on_refine(iteration: int, limit: int) -> None:
            self.refined[index] = iteration
            if iteration == 1 and self.log_refinement:
                LOG.info(f"A&E step {index}: refining (at most {limit} iterations)")
            if self.progress is not None:
                self.progress(iteration, limit)

        return on_refine

    def _record(
        self, index: int, result: StepResult, targets: Sequence[ImageTarget | None], latent_hw: tuple[int, int]
    ) -> None:
        self.altered.append(index)
        if index in self.refined and self.log_refinement:
            stopped = " (interrupted)" if self.should_stop is not None and self.should_stop() else ""
            LOG.info(f"A&E step {index}: {self.refined[index]} refinement iterations{stopped}")
        engine = self.engine
        record_step(self.images, result, targets, engine.grid(latent_hw), engine.objective, self.schedule.plan(index))
        for message in result.skipped.values():
            self.warn(SKIPPED.format(message=message, hint=self.hint))
        if index == self.schedule.alter_until - 1:
            for line in end_of_window_lines(self.images, self.schedule, engine.objective):
                LOG.info(line)
