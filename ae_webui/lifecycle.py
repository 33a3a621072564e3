"""What the script's hooks do, in order: read params, check the host, install per run, remove, report.

Nothing is patched between generations: the only hook is a forward pre-hook on the current sampler's
CFG denoiser, installed in process_before_every_sampling and removed when that sampling ends (post_sample,
postprocess, the next install, or an error); the model itself is only hooked inside each A&E pass. Where the
host samples through a diffusers pipeline (SD.Next), process_batch installs on the pipeline instead
(ae_webui.pipeline_run), removed at after_process (the host's finally), postprocess or the next batch.
"""

from __future__ import annotations

from typing import Any

from modules import sd_samplers_common, shared

from ae_lib.capture import attention_res_problem
from ae_lib.params import FIELDS, parse_named, parse_positional, to_infotext
from ae_lib.targets import objective_class, split_groups
from ae_lib.tokens import split_spec
from ae_webui import hosts
from ae_webui.pipeline_run import PipelineRun  # at load time: SD.Next has the extension on sys.path only then
from ae_webui.sampler_steps import TIMESTEP_SAMPLERS, kdiffusion_position, refusal, timesteps_position
from ae_webui.session import RunSpec, Session
from ae_webui.state import (
    INFO_KEYS,
    LOG,
    GenerationState,
    clear_infotext,
    freeze_infotext,
    get_state,
    install_infotext,
    set_state,
)
from ae_webui.xyz import OVERRIDES

ALL_INFO_KEYS = (*INFO_KEYS, *(f.infotext for f in FIELDS if f.infotext))


def begin(p: Any, args: tuple) -> None:
    """process(): parse and validate; write the infotext keys; leave a GenerationState on p when enabled."""
    end(p)
    clear_infotext(p, ALL_INFO_KEYS)
    set_state(p, None)
    result = parse_positional(args)
    overrides = getattr(p, OVERRIDES, None)
    if overrides:
        over = parse_named(overrides, base=result.params)
        result.params, result.errors = over.params, result.errors + over.errors
    params = result.params
    if not params.enabled:
        return
    if _reads_subjects(params) and not split_spec(params.subjects) and not split_groups(params.groups):
        result.errors.append("no subjects given (name them in Subjects, e.g. 'cat, frog')")
    if not result.ok:
        message = "A&E is off for this generation: " + "; ".join(result.errors)
        LOG.warning(message)
        p.extra_generation_params["AE error"] = message
        return
    p.extra_generation_params.update(to_infotext(params))  # groups and their problems: per image (Session)
    problem = hosts.standing_problem()
    if problem:  # never a silent no-op: the image says that A&E did not act, and why
        message = f"A&E did not act: {problem}; the image was made without A&E"
        LOG.warning(message)
        p.extra_generation_params["AE error"] = message
        return
    state = GenerationState(params)
    install_infotext(p, state, callables=hosts.infotext_callables())
    set_state(p, state)


def _reads_subjects(params: Any) -> bool:
    """Whether the objective reads the subject spec (the others pick their subjects from the groups)."""
    kind = objective_class(params.objective)
    return kind is None or kind.uses_subjects


def _host_problem(p: Any, latent: Any) -> str | None:
    host = hosts.current()
    problem = host.problem(p)
    if problem:
        return problem
    problem = refusal(p.sampler.config.name if getattr(p.sampler, "config", None) else p.sampler_name)
    if problem:
        return problem
    return _attention_res_problem(p, host, latent)


def _attention_res_problem(p: Any, host: Any, latent: Any) -> str | None:
    """The user's attention resolution against the layers the model really runs at this run's latent size
    (the sampler's x; the first pass's size from p where a host passes none)."""
    shape = getattr(latent, "shape", None)
    latent_hw = tuple(shape[-2:]) if shape is not None and len(shape) == 4 else (p.height // 8, p.width // 8)
    return attention_res_problem(host.unet(shared.sd_model), latent_hw, get_state(p).params.attention_res)


def _run_spec(p: Any) -> RunSpec:
    name = p.sampler.config.name if getattr(p.sampler, "config", None) else p.sampler_name
    hires = bool(getattr(p, "is_hr_pass", False))
    img2img = hires or getattr(p, "init_latent", None) is not None  # set by StableDiffusionProcessingImg2Img.init
    steps, t_enc = p.steps, None
    if img2img:
        # As the samplers' sample_img2img calls it: the hires pass passes its steps, img2img passes None.
        asked = (getattr(p, "hr_second_pass_steps", 0) or p.steps) if hires else None
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, asked)
    if name in TIMESTEP_SAMPLERS:
        position = timesteps_position(len(p.sampler.get_timesteps(p, steps)), t_enc)
    else:
        position = kdiffusion_position(steps, t_enc)
    prompts = list(getattr(p, "hr_prompts", None) or p.prompts) if hires else list(p.prompts)
    return RunSpec(name, name not in TIMESTEP_SAMPLERS, position, prompts)


def before_sampling(p: Any, latent: Any = None) -> None:
    """process_before_every_sampling(): install on this run's sampler (first pass, or hires if asked); `latent`
    is the x the host passes it (the run's latent)."""
    end(p)
    state = get_state(p)
    if state is None:
        return
    if getattr(p, "is_hr_pass", False) and not state.params.hires:
        return
    try:
        problem = _host_problem(p, latent)
        if problem:
            state.warn(f"A&E is off: {problem}")
            return
        if not getattr(p, "is_hr_pass", False):
            state.new_batch()
        for report in state.images.values():  # the hires pass has its own schedule: its own threshold outcomes
            report.thresholds = {}
        state.session = Session(p, state, _run_spec(p))
    except Exception as error:  # never break the generation
        LOG.exception("could not start A&E")
        state.warn(f"A&E is off: {type(error).__name__}: {error}")


def before_batch(p: Any) -> None:
    """process_batch(): where the host samples through a diffusers pipeline it calls itself (SD.Next), install
    A&E for this batch on the pipeline (ae_webui.pipeline_run); elsewhere process_before_every_sampling does."""
    if not hosts.samples_through_pipeline():
        return
    end(p)
    state = get_state(p)
    if state is None:
        return
    try:
        state.new_batch()
        state.session = PipelineRun(p, state)
    except Exception as error:  # never break the generation
        LOG.exception("could not start A&E")
        state.warn(f"A&E is off: {type(error).__name__}: {error}")


def end(p: Any) -> None:
    """Remove this generation's hook (idempotent; called at every boundary)."""
    state = get_state(p)
    if state is not None and state.session is not None:
        missed = state.session.missed()
        state.session.remove()
        state.session = None
        if missed:
            state.warn(missed)


def finish(p: Any) -> None:
    """postprocess(): remove the hook, and leave only plain values in the generation's parameters."""
    end(p)
    state = get_state(p)
    if state is not None:
        freeze_infotext(p, state)
