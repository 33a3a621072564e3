"""The host seam: what differs between the WebUIs this extension runs in, behind one small interface.

`current()` picks the adapter once, by what the host's modules expose (not by names or version strings): a
`backend.patcher.unet` package means Forge's own UNet/patcher stack (Forge, Forge Neo) and `ForgeHost`;
otherwise `A1111Host` serves (A1111, and Forge Classic and reForge, whose `sd_model.model.diffusion_model` and
text wrappers follow A1111). What differs inside a family is answered by probing the objects themselves:
autograd (ae_lib.autograd: inference tensors, in-place residual adds), the text engine (base.find_text_engine),
UNet patcher options (base.patcher_problem), the prompt-schedule signature (ae_webui.tokenize), infotext
serialisation (ae_webui.state.freeze_infotext), whether create_infotext calls callables (`infotext_callables`)
and whether the Script API has the per-sampling hook A&E installs from (`samples_through_pipeline`: where it
has not, A&E installs on the host's diffusers pipeline, ae_webui.pipeline_run, if `pipeline_problem` allows).
Everything else in ae_webui calls the returned object and imports no host-only module itself.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from functools import lru_cache
from typing import Any

from ae_webui.hosts.base import Host


def _is_forge() -> bool:
    try:
        return importlib.util.find_spec("backend.patcher.unet") is not None
    except (ImportError, ValueError):  # no `backend` package at all
        return False


@lru_cache(maxsize=1)
def current() -> Host:
    if _is_forge():
        from ae_webui.hosts.forge import ForgeHost

        return ForgeHost()
    from ae_webui.hosts.a1111 import A1111Host

    return A1111Host()


@lru_cache(maxsize=1)
def infotext_callables() -> bool:
    """Whether the host's create_infotext calls callable values (A1111, Forge, Classic, Neo: `value(**locals())`)
    or writes them as they are (SD.Next's modules/processing_info.py). Read from its source; unknown: plain."""
    from modules import processing

    try:
        source = inspect.getsource(processing.create_infotext)
    except (AttributeError, OSError, TypeError):
        return False
    return "callable(" in source


def _pipeline_name(model: Any) -> str | None:
    """The class name of a diffusers pipeline, if the host's model is one (diffusers is not imported for it)."""
    diffusers = sys.modules.get("diffusers")
    base = getattr(diffusers, "DiffusionPipeline", None)
    if isinstance(base, type) and isinstance(model, base):
        return type(model).__name__
    return None


def samples_through_pipeline() -> bool:
    """The Script API has no per-sampling hook (`process_before_every_sampling`): the host samples by calling a
    diffusers pipeline itself (SD.Next), and A&E installs per batch on the pipeline (ae_webui.pipeline_run)."""
    from modules import scripts

    return not callable(getattr(scripts.Script, "process_before_every_sampling", None))


def _has_cross_attention(unet: Any) -> bool:
    modules = getattr(unet, "modules", None)
    return callable(modules) and any(getattr(m, "is_cross_attention", False) for m in modules())


def pipeline_problem(model: Any) -> str | None:
    """Why A&E cannot serve this diffusers pipeline, or None: it needs a UNet whose cross-attention it reads,
    and diffusion (not flow-matching) steps."""
    name = _pipeline_name(model)
    if name is None:
        return f"the current model ({type(model).__name__}) is not a diffusers pipeline"
    unet = getattr(model, "unet", None)
    if unet is None or not _has_cross_attention(unet):
        return (f"the model's pipeline ({name}) has no UNet with cross-attention (a transformer model such as SD3 "
                "or Flux); A&E works on a UNet's cross-attention maps")
    scheduler = getattr(model, "scheduler", None)
    config = getattr(scheduler, "config", None) or {}
    if "FlowMatch" in type(scheduler).__name__ or config.get("prediction_type") == "flow_prediction":
        return (f"the model ({name}) samples by flow matching ({type(scheduler).__name__}); A&E's steps are "
                "defined for diffusion models")
    return None


def standing_problem() -> str | None:
    """Why A&E cannot act in this host at all, known at process(); None where it can.

    A&E installs on the sampler in the Script hook `process_before_every_sampling` where the Script API has it
    (A1111, Forge, Classic, Neo); where it has not (SD.Next), on the diffusers pipeline per batch, if the model
    is one A&E can serve (`pipeline_problem`). Without this check A&E would silently do nothing."""
    if not samples_through_pipeline():
        return None
    from modules import shared

    model = getattr(shared, "sd_model", None)
    if _pipeline_name(model) is None:
        return ("this WebUI has no per-sampling script hook (process_before_every_sampling) and its model is not "
                "a diffusers pipeline; A&E has no place to attach")
    return pipeline_problem(model)
