"""`attend_and_excite(pipe, subjects=..., **params)`: A&E inside a diffusers pipeline's own denoising loop.

Route (README "Using A&E with diffusers" says why): a forward pre-hook on `pipe.unet` runs A&E just before each
denoising step's UNet call, step 0 included, and moves the pipeline's own `latents` tensor in place, so the
scheduler's step continues from the moved latent; the UNet's input for that call is rebuilt from it as the
pipeline builds it (`scale_model_input(cat([latents] * 2))`). The pipeline's `latents` tensor is followed
through `pipe.prepare_latents` (step 0) and `scheduler.step` (every later step), and checked against the UNet's
input before every update. `pipe.encode_prompt` is wrapped to read the prompt and batch. Every patch is an
instance attribute or a hook handle, removed when the block exits, also on an exception.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ae_diffusers.schedulers import input_scale, refusal
from ae_diffusers.step import DiffusersStep, first_index, pipeline_schedule, unet_arguments, with_sample
from ae_diffusers.tokens import image_targets
from ae_lib.params import AEParams, parse_named


class AEWarning(UserWarning):
    """A&E did not act (or not on every image) in a pipeline call; the image is still made."""


@dataclass
class AERun:
    """One pipeline call: each image's subject labels and scores at the last altered step, and what went wrong."""

    labels: list[tuple[str, ...]] = field(default_factory=list)
    scores: list[list[float] | None] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    steps_altered: int = 0

    def note(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)


@dataclass
class _Call:
    """State of the pipeline call in progress."""

    prompts: list[str] | None = None
    per_prompt: int = 1
    step: DiffusersStep | None = None
    latents: torch.Tensor | None = None
    start: int | None = None
    calls: int = 0
    run: AERun = field(default_factory=AERun)


Spec = str | Sequence[str]  # one spec for every prompt, or one per prompt


def _params(subjects: Spec, groups: Spec, objective: str, values: dict[str, Any]) -> AEParams:
    specs = {"subjects": subjects, "groups": groups}
    for name, spec in specs.items():
        if not isinstance(spec, str) and not all(isinstance(s, str) for s in spec):
            raise ValueError(f"Attend-and-Excite: {name}: expected text or a list of texts, one per prompt")
    named = {k: v if isinstance(v, str) else "; ".join(v) for k, v in specs.items()}
    parsed = parse_named({"enabled": True, **named, "objective": objective, **values})
    if not parsed.ok:
        raise ValueError("Attend-and-Excite: " + "; ".join(parsed.errors))
    return parsed.params


def _per_prompt(spec: Spec, prompts: int, what: str) -> list[str]:
    if isinstance(spec, str):
        return [spec] * prompts
    if len(spec) != prompts:
        msg = f"{len(spec)} {what} specs for {prompts} prompts"
        raise ValueError(msg)
    return list(spec)


class AttendExciteSession:
    """Created by `attend_and_excite`; `runs` has one AERun per pipeline call, `scores` the latest one's."""

    def __init__(self, pipe: Any, subjects: Spec, params: AEParams, groups: Spec = "") -> None:
        self.pipe, self.subjects, self.groups, self.params = pipe, subjects, groups, params
        self.runs: list[AERun] = []
        self._call: _Call | None = None

    @property
    def scores(self) -> list[list[float] | None]:
        return self.runs[-1].scores if self.runs else []

    @property
    def messages(self) -> list[str]:
        return self.runs[-1].messages if self.runs else []

    # -- patches -------------------------------------------------------------------------------------------
    def install(self, stack: ExitStack) -> None:
        pipe = self.pipe
        _patch(stack, pipe, "encode_prompt", self._encode_prompt(pipe.encode_prompt))
        _patch(stack, pipe, "prepare_latents", self._prepare_latents(pipe.prepare_latents))
        _patch(stack, pipe.scheduler, "step", self._scheduler_step(pipe.scheduler.step))
        _patch(stack, pipe, "maybe_free_model_hooks", self._end_of_call(pipe.maybe_free_model_hooks))
        handle = pipe.unet.register_forward_pre_hook(self._unet_pre_hook, with_kwargs=True)
        stack.callback(handle.remove)
        stack.push(lambda exc_type, exc, tb: self._finish(interrupted=exc_type is not None))

    def _encode_prompt(self, original: Any) -> Any:
        signature = inspect.signature(original)

        def encode_prompt(*args: Any, **kwargs: Any) -> Any:
            if not self._in_pass():
                self._begin(signature.bind_partial(*args, **kwargs).arguments)
            return original(*args, **kwargs)

        return encode_prompt

    def _prepare_latents(self, original: Any) -> Any:
        def prepare_latents(*args: Any, **kwargs: Any) -> Any:
            latents = original(*args, **kwargs)
            if self._call is not None and self._call.step is None:
                self._guard(lambda: self._start(latents))
            return latents

        return prepare_latents

    def _scheduler_step(self, original: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if self._call is not None:
                self._call.latents = out[0] if isinstance(out, tuple) else out.prev_sample
            return out

        return step

    def _end_of_call(self, original: Any) -> Any:
        def maybe_free_model_hooks(*args: Any, **kwargs: Any) -> Any:
            self._finish()  # the pipelines call this last, after decoding
            return original(*args, **kwargs)

        return maybe_free_model_hooks

    def _in_pass(self) -> bool:
        """A&E's own UNet pass is running (its hooks leave it alone)."""
        return self._call is not None and self._call.step is not None and self._call.step.running

    # -- one pipeline call ---------------------------------------------------------------------------------
    def _begin(self, bound: dict[str, Any]) -> None:
        self._finish()
        call = self._call = _Call()
        self.runs.append(call.run)
        prompt = bound.get("prompt")
        call.per_prompt = int(bound.get("num_images_per_prompt") or 1)
        if prompt is None:
            call.run.messages.append("A&E needs the prompt text to find the subjects (prompt_embeds alone "
                                     "cannot be read); A&E did not act")
            return
        call.prompts = [prompt] if isinstance(prompt, str) else list(prompt)

    def _start(self, latents: torch.Tensor) -> None:
        call, pipe = self._call, self.pipe
        if call.prompts is None:
            return
        problem = refusal(pipe.scheduler)
        if problem:
            call.run.messages.append(f"A&E did not act: {problem}")
            return
        try:
            subjects = _per_prompt(self.subjects, len(call.prompts), "subject")
            groups = _per_prompt(self.groups, len(call.prompts), "group")
        except ValueError as error:
            call.run.messages.append(f"A&E did not act: {error}")
            return
        targets, problems = image_targets(pipe, call.prompts, subjects, call.per_prompt, groups, self.params.objective)
        call.run.messages.extend(f"A&E: {p}; that prompt's images are not altered" for p in problems)
        call.run.labels = [t.labels if t else () for t in targets]
        steps = int(getattr(pipe.scheduler, "num_inference_steps", None) or len(pipe.scheduler.timesteps))
        schedule = pipeline_schedule(self.params, steps, len(pipe.scheduler.timesteps))
        call.step = DiffusersStep(pipe.unet, self.params, schedule, targets, warn=call.run.note)
        call.latents = latents

    def _unet_pre_hook(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        call = self._call
        if call is None or call.step is None or call.step.running:
            return None
        out = self._guard(lambda: self._before_unet(call, args, kwargs))
        return out if isinstance(out, tuple) else None

    def _before_unet(self, call: _Call, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        latents, scheduler = call.latents, self.pipe.scheduler
        if call.start is None:
            call.start = first_index(scheduler.timesteps, timestep)
        index = call.start + call.calls
        call.calls += 1
        if call.step.schedule.plan(index) is None:
            return None
        chunks = sample.shape[0] // latents.shape[0]
        if sample.shape[1:] != latents.shape[1:] or chunks * latents.shape[0] != sample.shape[0] or not (
            torch.equal(sample[-latents.shape[0]:], scheduler.scale_model_input(latents, timestep))
        ):
            call.step = None
            msg = ("A&E stopped: the UNet's input is not the pipeline's latent (a callback_on_step_end that "
                   "returns new latents, or a pipeline A&E does not know); the rest of the run is plain")
            raise RuntimeError(msg)
        unet_kwargs = unet_arguments(self.pipe.unet, args, kwargs)
        unet_kwargs.pop("sample", None)
        result = call.step(index, latents, unet_kwargs, input_scale(scheduler, latents, timestep), chunks)
        if result is None:
            return None
        call.run.steps_altered += 1
        return with_sample(args, kwargs, scheduler.scale_model_input(torch.cat([latents] * chunks), timestep))

    def _guard(self, action: Any) -> Any:
        """Errors inside our hooks are reported and A&E stands down for this call; the image is still made."""
        try:
            return action()
        except Exception as exc:  # our boundary: never break the user's generation
            if self._call is not None:
                self._call.step = None
                self._call.run.messages.append(f"A&E stopped: {exc}")
            return None

    def _finish(self, interrupted: bool = False) -> None:
        call, self._call = self._call, None
        if call is None:
            return
        run = call.run
        if interrupted:  # the exception itself tells the user; the record says where the run stopped
            run.messages.append(f"the pipeline call ended with an exception after {run.steps_altered} A&E steps")
            return
        if call.step is not None:
            windows = call.step.windows
            run.scores = [windows[b].scores if b in windows else None for b in range(len(call.step.targets))]
        if not run.steps_altered and not run.messages:
            run.messages.append("A&E did not act: no step of this run was in the altered window")
        for message in run.messages:
            warnings.warn(message, AEWarning, stacklevel=3)


def _patch(stack: ExitStack, owner: Any, name: str, value: Any) -> None:
    """Set an instance attribute; on exit restore the previous instance attribute or remove ours."""
    had = name in vars(owner)
    previous = vars(owner).get(name)
    setattr(owner, name, value)

    def undo() -> None:
        if had:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)

    stack.callback(undo)


@contextmanager
def attend_and_excite(
    pipe: Any, subjects: Spec = "", groups: Spec = "", objective: str = "excite", **params: Any
) -> Iterator[AttendExciteSession]:
    """A&E in every call of `pipe` inside the block. `subjects`: one spec for every prompt, or one per prompt
    ("cat, frog", "2, 5", "frog#2"); `groups`: likewise, for an objective that binds words ("red car; blue bird",
    a group's last word is its subject); `objective`: "excite" (the paper's) or another of README
    "Objectives"; `params`: AEParams' fields (README "Parameters"). Bad values raise ValueError here, before
    anything is patched."""
    session = AttendExciteSession(pipe, subjects, _params(subjects, groups, objective, params), groups)
    problem = refusal(pipe.scheduler)
    if problem:
        raise ValueError(f"Attend-and-Excite: {problem}")
    with ExitStack() as stack:
        session.install(stack)
        yield session
