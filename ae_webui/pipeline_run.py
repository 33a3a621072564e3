"""A&E in a WebUI whose sampler is a diffusers pipeline it calls itself (SD.Next): one batch's install.

SD.Next calls `shared.sd_model(**args)` (the txt2img pipeline, or an img2img one it builds with `from_pipe` for
img2img and the hires pass, all sharing one UNet) and merges `p.task_args` over the arguments. Per batch, A&E
installs two things and removes both when the generation ends (after_process, postprocess, the next batch):
- `p.task_args['callback_on_step_end']`: SD.Next's own `diffusers_callback` (progress, interrupt, previews,
  prompt scheduling), then ours, which only counts the pipeline's loop step. X/Y/Z cells share task_args
  (shallow copies of p): it is set and removed per run.
- a forward pre-hook on the UNet: before each denoising step's UNet call (step 0 included; no callback sees
  step 0's latent), A&E runs on the conditional rows of the UNet's own input and returns that input rebuilt
  from the moved latent, so this call's prediction is on the moved latent. The pipeline's own `latents`
  tensor gets the same move when the scheduler's step receives it, just after this UNet call: a one-shot
  instance attribute on the scheduler, removed before it runs. It checks that the tensor is the one the
  UNet's input was made from (else A&E stands down with the reason), moves it in place, and the scheduler
  continues from it, as it would have had the latent been moved before the call.
Every error inside is caught here: A&E stands down for the rest of the generation, the reason goes into the
image's info, the image is still made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ae_diffusers.schedulers import input_scale, refusal
from ae_diffusers.step import DiffusersStep, first_index, pipeline_schedule, unet_arguments, with_sample
from ae_diffusers.tokens import token_rule
from ae_lib.capture import attention_res_problem
from ae_lib.engine import ImageTarget
from ae_webui import pipeline_prompts, settings
from ae_webui.state import LOG, GenerationState

CALLBACK = "callback_on_step_end"
HINT = "set Settings > Compute Settings > Device precision type to FP32 if this repeats"


@dataclass
class _Call:
    """One pipeline call (the base pass or the hires pass)."""

    hires: bool
    step: DiffusersStep | None = None  # None: A&E does not act in this call
    start: int = 0  # the schedule position of the call's first step (img2img and hires start part-way)
    loop: int = 0  # the loop step of the next UNet call
    prompts: list[str] = field(default_factory=list)
    steps: int = 1
    targets: dict[tuple[int, str], ImageTarget | None] = field(default_factory=dict)


class PipelineRun:
    def __init__(self, p: Any, state: GenerationState) -> None:
        from modules import shared

        self.p, self.state = p, state
        self.unet = shared.sd_model.unet
        self.parser = pipeline_prompts.parser_name(p)
        self.active = True
        self.call: _Call | None = None
        self._undo: list[Any] = []
        task_args = p.task_args if isinstance(getattr(p, "task_args", None), dict) else {}
        p.task_args = task_args
        self.previous = task_args.get(CALLBACK)
        task_args[CALLBACK] = self._on_step_end
        self._undo.append(self._remove_callback)
        handle = self.unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        self._undo.append(handle.remove)

    # -- install / remove ----------------------------------------------------------------------------------
    def remove(self) -> None:
        self.active = False
        while self._undo:
            self._undo.pop()()

    def _remove_callback(self) -> None:
        task_args = self.p.task_args
        if task_args.get(CALLBACK) == self._on_step_end:
            if self.previous is None:
                task_args.pop(CALLBACK, None)
            else:
                task_args[CALLBACK] = self.previous

    def missed(self) -> str | None:
        """Said per pipeline call instead, when the call ends (`_end_call`)."""
        return None

    def stand_down(self, reason: str) -> None:
        self.state.warn(f"A&E stood down for this image: {reason}")
        self.remove()

    # -- the per-step callback -----------------------------------------------------------------------------
    def _on_step_end(self, pipe: Any, step: int = 0, timestep: Any = 0, kwargs: dict | None = None) -> dict:
        from modules.processing_callbacks import diffusers_callback

        kwargs = (self.previous or diffusers_callback)(pipe, step, timestep, kwargs)  # interrupt raises here
        if self.active:
            try:
                self._after_step(pipe, step)
            except Exception as error:  # our boundary
                LOG.exception("error after an A&E step")
                self.stand_down(f"{type(error).__name__}: {error}")
        return kwargs

    def _after_step(self, pipe: Any, step: int) -> None:
        call = self.call
        if call is None or getattr(pipe, "unet", None) is not self.unet:
            if getattr(self.p, "is_refiner_pass", False) and self.state.images:
                self.state.warn("the refiner pass ran without A&E (A&E acts on the base model's steps)")
            return
        call.loop = step + 1
        if call.loop >= int(getattr(pipe, "num_timesteps", 0) or 0):
            self._end_call(call)

    def _end_call(self, call: _Call) -> None:
        self.call = None
        if call.step is None:
            return
        window = call.step.schedule.alter_until
        said = self.state.messages or any(r.problem for r in self.state.images.values())
        if not call.step.altered and call.start < window and not said and not _interrupted():
            self.state.warn(f"A&E did not act: no UNet call of the pipeline reached an A&E step "
                            f"({call.start}-{window - 1})")

    # -- the UNet pre-hook ---------------------------------------------------------------------------------
    def _in_pass(self) -> bool:
        """A&E's own UNet pass is running (the hook leaves it alone)."""
        step = None if self.call is None else self.call.step
        return step is not None and step.running

    def _pre_hook(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not self.active or self._in_pass():
            return None
        try:
            return self._before_unet(args, kwargs)
        except Exception as error:  # our boundary: never break the user's generation
            LOG.exception("error in the A&E step")
            self.stand_down(f"{type(error).__name__}: {error}")
            return None

    def _before_unet(self, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        from modules import shared

        bound = unet_arguments(self.unet, args, kwargs)
        sample, timestep = bound.pop("sample"), bound.get("timestep")
        hires = bool(getattr(self.p, "is_hr_pass", False))
        if self.call is None or self.call.hires != hires:
            self.call = self._new_call(shared.sd_model, hires, timestep, tuple(sample.shape[-2:]))
        call = self.call
        index = call.start + call.loop
        if call.step is None or not call.step.driver.alters(index):
            return None
        batch = len(call.prompts)
        chunks = sample.shape[0] // max(batch, 1)
        if chunks not in (1, 2) or chunks * batch != sample.shape[0] or not torch.equal(sample[:batch],
                                                                                        sample[-batch:]):
            msg = f"the UNet's input ({tuple(sample.shape)}) is not {batch} latents (x2 under CFG)"
            raise RuntimeError(msg)
        width = int(bound["encoder_hidden_states"].shape[1])
        targets = [self._target(call, b, width) for b in range(batch)]
        if all(t is None for t in targets):
            return None
        scheduler = shared.sd_model.scheduler
        z0 = sample[-batch:].clone()  # the UNet's conditional input rows (latent x scale)
        z = z0.clone()  # moved in place by the step (in the host's grad mode, as the host's tensors)
        if call.step(index, z, bound, 1.0, chunks, targets) is None:
            return None
        self._move_pipeline_latents(scheduler, timestep, z0, z, input_scale(scheduler, z0, timestep))
        return with_sample(args, kwargs, torch.cat([z.to(sample.dtype)] * chunks))

    def _move_pipeline_latents(self, scheduler: Any, timestep: Any, z0: torch.Tensor, z: torch.Tensor,
                               scale: float) -> None:
        """The pipeline's `latents` += the move, when the scheduler's step of this UNet call receives it."""
        delta = (z - z0).double() / scale
        original = scheduler.step
        had = "step" in vars(scheduler)

        def undo() -> None:
            if had:
                scheduler.step = original
            else:
                vars(scheduler).pop("step", None)

        def step(*args: Any, **kwargs: Any) -> Any:
            if undo in self._undo:
                self._undo.remove(undo)
                undo()
            latents = args[2] if len(args) > 2 else kwargs["sample"]
            if self.active:
                if latents.shape != z0.shape or not torch.equal(scheduler.scale_model_input(latents, timestep), z0):
                    self.stand_down("the scheduler's latent is not the one the UNet's input was made from (a "
                                    "pipeline or callback A&E does not know)")
                else:
                    latents.add_(delta.to(latents.dtype))
            return original(*args, **kwargs)

        scheduler.step = step
        self._undo.append(undo)

    # -- per pipeline call ---------------------------------------------------------------------------------
    def _new_call(self, pipe: Any, hires: bool, timestep: Any, latent_hw: tuple[int, int]) -> _Call:
        call = _Call(hires)
        params = self.state.params
        if hires and not params.hires:
            return call
        scheduler = pipe.scheduler
        problem = refusal(scheduler) or attention_res_problem(self.unet, latent_hw, params.attention_res)
        if problem:
            self.state.warn(f"A&E is off: {problem}")
            return call
        p = self.p
        refiner_prompt = str(getattr(p, "refiner_prompt", "") or "")
        call.prompts = [refiner_prompt] * len(p.prompts) if hires and refiner_prompt else list(p.prompts)
        calls = len(scheduler.timesteps)
        call.steps = int(getattr(scheduler, "num_inference_steps", None) or calls)
        call.start = first_index(scheduler.timesteps, timestep)
        schedule = pipeline_schedule(params, call.steps, calls)
        call.step = DiffusersStep(self.unet, params, schedule, warn=self.state.warn, hint=HINT,
                                  keep_maps=params.save_maps, checkpoint=settings.checkpointing(),
                                  images=self.state.images, should_stop=_interrupted, progress=_progress,
                                  log_refinement=False)
        for report in self.state.images.values():  # the hires pass has its own schedule: its own threshold outcomes
            report.thresholds = {}
        return call

    def _target(self, call: _Call, b: int, width: int) -> ImageTarget | None:
        """Image b's subject columns in the text its embedding has at this step (prompt scheduling aware)."""
        from modules import shared

        texts = pipeline_prompts.scheduled_texts(call.prompts[b], call.steps)
        text = texts[min(call.loop, len(texts) - 1)]
        key = (b, text)
        if key not in call.targets:
            call.targets[key] = self._map(shared.sd_model, b, text, width)
        return call.targets[key]

    def _map(self, pipe: Any, b: int, text: str, width: int) -> ImageTarget | None:
        try:
            columns = pipeline_prompts.columns_for_text(pipe, text, self.parser)
            problem = pipeline_prompts.check_width(columns, width)
        except ValueError as error:
            columns, problem = [], str(error)
        return self.state.target(b, columns, token_rule(pipe), problem)


def _interrupted() -> bool:
    from modules import shared

    return bool(shared.state.interrupted or shared.state.skipped)


def _progress(iteration: int, limit: int) -> None:
    from modules import shared

    shared.state.textinfo = f"Attend and Excite: refining {iteration}/{limit}"
