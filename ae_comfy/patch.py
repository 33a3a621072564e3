"""A&E inside ComfyUI's sampling: two wrappers on the node's cloned MODEL.

- SAMPLER_SAMPLE wraps one sampling run (comfy/samplers.py: CFGGuider.inner_sample). It sees the KSAMPLER (its
  `sampler_function` names the sampler), the run's sigmas and the denoise mask, decides whether A&E can run
  (refusals stand A&E down with a warning; the image is still made), places the run in its full schedule
  (denoise < 1) and counts the model calls of the run.
- PREDICT_NOISE wraps every model call (CFGGuider.outer_predict_noise) before the model runs, with the
  sampler's own `x`. On a step's main call inside the window the engine runs on the conditional rows and the
  update is written into that `x` in place: the sampler's arithmetic and this call's prediction both use it.

The node's own encoded tensor is looked up among the guider's positive conds: A&E runs only when the sampler's
positive conditioning is exactly the one the node encoded (the columns it scores are that tensor's columns).
A&E's pass calls the model's apply_model with that cond's model_conds, like the sampler's cond branch, with
PyTorch attention (`optimized_attention_override`) so every attention on the way is differentiable.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ae_comfy import samplers
from ae_comfy.placement import Placement, candidates, locate, whole_run
from ae_lib.capture import attention_res_problem, find_cross_attention
from ae_lib.driver import StepDriver
from ae_lib.engine import NoGradientError
from ae_lib.objective_report import image_line
from ae_lib.objectives import DEFAULT, ImageTarget
from ae_lib.params import AEParams
from ae_lib.refusals import no_cross_attention, options_problem
from ae_lib.schedule import Schedule
from ae_lib.steps import CallRule, step_of_call
from ae_lib.window import ImageWindow

LOG = logging.getLogger("attend_and_excite")
KEY = "attend_and_excite"
CHURN = math.sqrt(2)  # samplers with s_churn evaluate at sigma_hat <= sqrt(2) * sigma (gamma <= sqrt(2) - 1)


@dataclass
class RunReport:
    """What one sampling run did: per image its objective's measures and maps, warnings, and the steps A&E
    altered."""

    objective: str = DEFAULT
    sampler: str = ""
    label: str = ""  # which sampler node ran it ("sampler #5"), where ComfyUI says
    placement: Placement | None = None
    schedule: Schedule | None = None
    images: dict[int, ImageWindow] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)  # full-schedule indices where the engine ran
    refined: dict[int, int] = field(default_factory=dict)  # refinement iterations at each refined index
    calls: int = 0

    def lines(self) -> list[str]:
        lines = []
        for b, image in sorted(self.images.items()):
            if image.scores:
                lines.append(image_line(b, image, self.objective, self.schedule))
        return [*lines, *self.warnings] or ["A&E: no step of this run was in its window"]

    def text(self) -> str:
        return "\n".join(self.lines())


def _sampler_key() -> tuple[str, Any] | None:
    """The sampler node running now (ComfyUI's execution context, 2025), or None where ComfyUI does not say."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return None if context is None else (str(context.node_id), context.list_index)


def _label(key: tuple[str, Any] | None) -> str:
    if key is None:
        return "sampler"
    node, item = key
    return f"sampler #{node}" + (f" (list item {item + 1})" if item else "")


class AEPatch:
    """The wrappers one node output carries. `report` holds the last run's outcome (read by the maps node),
    `runs` the latest run of each sampler node on this MODEL (a base and a hires KSampler): the node shows each."""

    def __init__(self, params: AEParams, target: ImageTarget, cond: torch.Tensor, node_id: str | None) -> None:
        self.params, self.target, self.cond, self.node_id = params, target, cond, node_id
        self.report = RunReport(params.objective)
        self.runs: dict[tuple[str, Any] | None, RunReport] = {}
        self._run: _Run | None = None

    def text(self) -> str:
        """Every run's lines; with several sampler nodes, each line says which one ("sampler #5: image 1: ...")."""
        runs = list(self.runs.values()) or [self.report]
        if len(runs) == 1:
            return runs[0].text()
        return "\n".join(f"{run.label}: {line}" for run in runs for line in run.lines())

    def install(self, patcher: Any) -> None:
        try:
            from comfy.patcher_extension import WrappersMP
        except ImportError:
            WrappersMP = None
        if WrappersMP is None or not hasattr(patcher, "add_wrapper_with_key"):
            msg = ("Attend and Excite needs ComfyUI's sampler wrappers (comfy/patcher_extension.py, added in late "
                   "2024); this ComfyUI is older: update it")
            raise RuntimeError(msg)
        patcher.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, KEY, self.sampler_sample)
        patcher.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, KEY, self.predict_noise)

    # --- wrappers ---------------------------------------------------------------------------------------------
    def sampler_sample(self, executor: Any, guider: Any, sigmas: torch.Tensor, extra_args: dict, *args: Any,
                       **kwargs: Any) -> Any:
        # CFGGuider.inner_sample passes (callback, noise, latent_image, denoise_mask, disable_pbar) after extra_args
        denoise_mask = kwargs.get("denoise_mask", args[3] if len(args) > 3 else None)
        noise = kwargs.get("noise", args[1] if len(args) > 1 else None)
        latent_hw = tuple(noise.shape[-2:]) if isinstance(noise, torch.Tensor) and noise.ndim == 4 else None
        key = _sampler_key()
        self.report = RunReport(self.params.objective, samplers.sampler_name(executor.class_obj), _label(key))
        self.runs[key] = self.report
        self._run = None
        try:
            self._run = self._begin(executor.class_obj, guider, sigmas, extra_args, denoise_mask, latent_hw)
        except Exception as error:  # our boundary: never cost the user the image
            LOG.exception("A&E could not start")
            self._warn(f"A&E stood down: {type(error).__name__}: {error}")
        try:
            return executor(guider, sigmas, extra_args, *args, **kwargs)
        finally:
            self._run = None
            self._finish()

    def predict_noise(self, executor: Any, x: torch.Tensor, timestep: torch.Tensor, model_options: dict,
                      *args: Any, **kwargs: Any) -> Any:
        run = self._run
        if run is not None:
            try:
                run.call(x, timestep, model_options)
            except NoGradientError as error:  # never a silent no-op, never a lost image: said on the node
                self._run = None
                self._warn(f"A&E did not act: {error}")
            except Exception as error:
                LOG.exception("error in the A&E step")
                self._run = None
                self._warn(f"A&E stood down for the rest of this run: {type(error).__name__}: {error}")
        return executor(x, timestep, model_options, *args, **kwargs)

    # --- run set-up -------------------------------------------------------------------------------------------
    def _begin(self, sampler: Any, guider: Any, sigmas: torch.Tensor, extra_args: dict, denoise_mask: Any,
               latent_hw: tuple[int, int] | None) -> _Run | None:
        name = self.report.sampler
        problem = samplers.refusal(name)
        model = guider.inner_model
        unet = model.diffusion_model
        model_options = extra_args.get("model_options", {})
        if problem is None and denoise_mask is not None:
            problem = "an inpainting denoise mask is set (A&E's update would be overwritten outside the mask)"
        if problem is None and not find_cross_attention(unet):
            problem = no_cross_attention(type(model).__name__)
        if problem is None and latent_hw is not None:  # the user's attention_res, against the layers that run
            problem = attention_res_problem(unet, latent_hw, self.params.attention_res)
        if problem is None:
            problem = options_problem(model_options, "node")
        entry = self._our_cond(guider) if problem is None else None
        if problem is None and entry is None:
            problem = ("the sampler's positive conditioning is not this node's CONDITIONING output alone; connect "
                       "the node's CONDITIONING to the sampler's positive input")
        placement = None
        run = [float(s) for s in sigmas]
        if problem is None and not all(math.isfinite(s) for s in run):
            problem = (f"this run's sigmas are not all finite ({', '.join(f'{s:.4g}' for s in run[:4])}"
                       f"{', ...' if len(run) > 4 else ''}; e.g. ComfyUI's kl_optimal at 1 step gives NaN)")
        if problem is None:
            placement = place(model.model_sampling, run)
            if placement is None:
                problem = ("these sigmas are not part of a schedule A&E can place (a partial run of custom sigmas); "
                           "A&E's window is a fraction of the full schedule")
        if problem is not None:
            self._warn(f"A&E stood down: {problem}")
            return None
        self.report.placement = placement
        self.report.schedule = Schedule.from_params(self.params, placement.total)
        return _Run(self, model, unet, entry, samplers.rule(name), placement, len(sigmas) - 1,
                    [float(s) for s in sigmas])

    def _our_cond(self, guider: Any) -> dict | None:
        positive = getattr(guider, "conds", {}).get("positive") or []
        if len(positive) != 1:
            return None
        tensor = positive[0].get("cross_attn")
        if tensor is self.cond or (isinstance(tensor, torch.Tensor) and tensor.shape == self.cond.shape
                                   and torch.equal(tensor.to(self.cond.device), self.cond)):
            return positive[0]
        return None

    # --- reporting --------------------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        LOG.warning(message)
        if message not in self.report.warnings:
            self.report.warnings.append(message)
        self._show(self.text())

    def _finish(self) -> None:
        self._show(self.text())

    def _show(self, text: str) -> None:
        """The text under the node's title in ComfyUI's page (PromptServer.send_progress_text)."""
        if self.node_id is None:
            return
        try:
            from server import PromptServer

            PromptServer.instance.send_progress_text(f"Attend and Excite\n{text}", self.node_id)
        except Exception:  # no server (scripts, tests): the console has it
            LOG.debug("no PromptServer to show the scores on", exc_info=True)


def place(model_sampling: Any, run: list[float]) -> Placement | None:
    """The run's place in a full schedule of one of ComfyUI's schedulers (see ae_comfy.placement)."""
    from comfy.samplers import SCHEDULER_NAMES, calculate_sigmas

    @functools.cache  # the search asks for the same lengths again (both variants, the neighbourhood)
    def sigmas(name: str, total: int) -> tuple[float, ...] | None:
        try:
            return tuple(float(s) for s in calculate_sigmas(model_sampling, name, total))
        except Exception:  # a scheduler that cannot make this length
            return None

    def schedules(name: str, total: int) -> list[tuple[str, list[float]]]:
        full, more = sigmas(name, total), sigmas(name, total + 1)
        if full is None or more is None:
            return []
        # dpm_2, dpm_2_ancestral, uni_pc: one step more, then the next-to-last sigma dropped
        return [(f"{name}, {total} steps", list(full)), (f"{name}, {total} steps (penultimate dropped)",
                                                         [*more[:-2], more[-1]])]

    return locate(run, candidates(schedules, SCHEDULER_NAMES, run)) or whole_run(run, float(model_sampling.sigma_max))


def _plain_attention(func: Any, *args: Any, **kwargs: Any) -> Any:
    """optimized_attention_override for A&E's pass: PyTorch's SDPA, differentiable whatever the host runs."""
    from comfy.ldm.modules.attention import attention_pytorch

    return attention_pytorch(*args, **kwargs)


class _Run:
    """One sampling run: call counting, and the conditioning of A&E's pass (ae_lib.driver does the step)."""

    def __init__(self, patch: AEPatch, model: Any, unet: torch.nn.Module, entry: dict, rule: CallRule,
                 placement: Placement, run_steps: int, sigmas: list[float]) -> None:
        from comfy.model_management import processing_interrupted

        self.patch, self.model, self.entry, self.rule = patch, model, entry, rule
        self.placement, self.run_steps, self.sigmas = placement, run_steps, sigmas
        report = patch.report
        self.driver = StepDriver(unet, patch.params, placement.total, patch._warn, "try --force-fp32 if this repeats",
                                 keep_maps=True, images=report.images,
                                 should_stop=processing_interrupted)
        report.altered, report.refined = self.driver.altered, self.driver.refined
        self.calls = 0

    def call(self, x: torch.Tensor, timestep: torch.Tensor, model_options: dict) -> None:
        call, self.calls = self.calls, self.calls + 1
        self.patch.report.calls = self.calls
        k = step_of_call(self.rule, call, self.run_steps)
        if k is None or k >= self.run_steps:
            return
        sigma = float(timestep.flatten()[0])
        expected = self.sigmas[k]
        if not (expected * (1 - 1e-4) <= sigma <= expected * CHURN * (1 + 1e-4) + 1e-7):
            msg = (f"model call {call} came at sigma {sigma:.4g}, but step {k} of this {self.patch.report.sampler} "
                   f"run is at sigma {expected:.4g}: the sampler's calls do not follow the pattern A&E expects")
            raise RuntimeError(msg)
        index = self.placement.start + k
        if not self.driver.alters(index):
            return
        with torch.inference_mode(False):  # a normal tensor: A&E's pass divides by it under autograd
            scale = self.model.model_sampling.calculate_input(timestep, torch.ones_like(x)).to(torch.float64)
        targets = [self.patch.target] * x.shape[0]
        self.driver.step(index, x, scale, self._cond_runner(timestep, scale, model_options), targets)

    def _cond_runner(self, timestep: torch.Tensor, scale: torch.Tensor, model_options: dict) -> Any:
        from comfy.samplers import cond_cat

        base = dict(model_options.get("transformer_options", {}))
        model_conds = self.entry.get("model_conds", {})
        uuid = self.entry.get("uuid")

        def run(z_rows: torch.Tensor, sel: list[int]) -> Any:
            n = len(sel)
            conditioning = {k: c.process_cond(batch_size=n, area=None) for k, c in model_conds.items()}
            c = cond_cat([conditioning])
            ts = timestep[sel]
            options = {**base, "cond_or_uncond": [0] * n, "uuids": [uuid] * n, "sigmas": ts,
                       "optimized_attention_override": _plain_attention}
            x_rows = z_rows / scale[sel].to(z_rows.dtype)  # apply_model's calculate_input gives z_rows back
            return self.model.apply_model(x_rows, ts, **c, transformer_options=options)

        return run
