"""One sampling run with A&E: a forward pre-hook on the sampler's CFG denoiser that moves the sampler's latent.

The pre-hook receives the very tensor the sampler passed as `x` (webui-host-a1111.md §2.5). On a step's
main call inside the window it runs the engine on the conditional rows and writes the update into that
tensor in place, before CFGDenoiser.forward copies it into x_in: the sampler's own arithmetic and this
call's model input both use the moved latent. Everything inside the hook is caught here: an error
stands A&E down for the rest of the image and the generation goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modules import prompt_parser, shared

from ae_lib.driver import StepDriver
from ae_lib.latents import apply_model_update, c_in
from ae_lib.objectives import ImageTarget
from ae_webui import hosts, settings, tokenize
from ae_webui.sampler_steps import RunPosition, step_of_call
from ae_webui.state import LOG, GenerationState


@dataclass
class RunSpec:
    """What a session needs to know about this run, decided in process_before_every_sampling."""

    sampler_name: str
    kdiffusion: bool
    position: RunPosition
    prompts: list[str]  # final prompts of this batch (or the hires prompts)


class Session:
    def __init__(self, p: Any, state: GenerationState, spec: RunSpec) -> None:
        self.p, self.state, self.spec = p, state, spec
        self.model = shared.sd_model
        self.host = hosts.current()
        self.checkpoint = getattr(self.model, "sd_checkpoint_info", None)
        self.rule = tokenize.token_rule(self.model)
        params = state.params
        self.driver = StepDriver(
            self.host.unet(self.model), params, spec.position.total, state.warn, "run with --no-half if this repeats",
            keep_maps=params.save_maps, checkpoint=settings.checkpointing(), images=state.images,
            scope=self.host.grad_scope, should_stop=_interrupted, progress=self._progress, log_refinement=False,
        )
        self.denoiser = p.sampler.model_wrap_cfg
        self.handle = self.denoiser.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        self.active = True
        self._targets: dict[tuple[int, str], ImageTarget | None] = {}

    def remove(self) -> None:
        self.active = False
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def missed(self) -> str | None:
        """Why A&E never acted in a run that overlapped its window (no silent no-op), or None."""
        start, window = self.spec.position.start, self.driver.schedule.alter_until
        if not self.active or self.driver.altered or start >= window or _interrupted():
            return None
        if self.state.messages or any(r.problem for r in self.state.images.values()):
            return None  # already said why
        return (f"A&E did not act: the sampler made no model call A&E could use at steps {start}-{window - 1} of "
                f"'{self.spec.sampler_name}' (another extension may replace the CFG denoiser's call)")

    def stand_down(self, reason: str) -> None:
        self.state.warn(f"A&E stood down for this image: {reason}")
        self.remove()

    def _pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not self.active:
            return
        try:
            self._step(module, args, kwargs)
        except Exception as error:  # our boundary: never break the user's generation
            LOG.exception("error in the A&E step")
            self.stand_down(f"{type(error).__name__}: {error}")

    def _step(self, denoiser: Any, args: tuple, kwargs: dict) -> None:
        # The refiner loads a new model object, or new weights into this one (same architecture).
        same_weights = getattr(shared.sd_model, "sd_checkpoint_info", None) is self.checkpoint
        if shared.sd_model is not self.model or not same_weights:
            self.stand_down("the model changed during sampling (e.g. the SDXL refiner took over)")
            return
        run_steps = self.spec.position.total - self.spec.position.start
        k = step_of_call(self.spec.sampler_name, int(denoiser.step), run_steps)
        if k is None:
            return
        index = self.spec.position.start + k
        if not self.driver.alters(index):
            return
        x = args[0]
        sigma = args[1] if len(args) > 1 else kwargs["sigma"]
        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(kwargs["cond"], denoiser.step)
        rows = [conds_list[i][0][0] for i in range(len(conds_list))]
        targets = [self._target(i, kwargs["cond"], denoiser.step) for i in range(len(conds_list))]
        run_cond = self.host.cond_runner(
            self.model, denoiser, tensor, rows, kwargs.get("image_cond"), sigma, self.spec.kdiffusion
        )
        family_sigma = sigma if self.spec.kdiffusion else None  # k-diffusion's x = z / c_in; timestep samplers' x = z
        # written back through ae_lib.latents in sigma form, the WebUI's own conversion
        self.driver.step(index, x, None if family_sigma is None else c_in(family_sigma), run_cond, targets,
                         lambda x, z, z_new: apply_model_update(x, z, z_new, family_sigma))

    def _target(self, i: int, cond: Any, step: int) -> ImageTarget | None:
        """Image i's subject columns in the prompt text its cond uses at this step (prompt editing aware)."""
        schedules = cond.batch[i][0].schedules
        seg = next((j for j, s in enumerate(schedules) if step <= s.end_at_step), 0)
        texts = tokenize.schedule_texts(self.spec.prompts[i], int(schedules[-1].end_at_step))
        text = texts[min(seg, len(texts) - 1)][1]
        key = (i, text)
        if key not in self._targets:
            self._targets[key] = self._map(i, text)
        return self._targets[key]

    def _map(self, i: int, text: str) -> ImageTarget | None:
        return self.state.target(i, tokenize.columns_for_text(text, self.model), self.rule)

    def _progress(self, iteration: int, limit: int) -> None:
        shared.state.textinfo = f"Attend and Excite: refining {iteration}/{limit}"


def _interrupted() -> bool:
    return bool(shared.state.interrupted or shared.state.skipped)
