"""The host seam: what differs between the WebUIs this extension runs in, behind one small interface.

`current()` picks the adapter once, by what the host's modules expose (not by names or version strings): a
`backend.patcher.unet` package means Forge's own UNet/patcher stack (Forge, Forge Neo) and `ForgeHost`;
otherwise `A1111Host` serves (A1111, and Forge Classic and reForge, whose `sd_model.model.diffusion_model` and
text wrappers follow A1111). What differs inside a family is answered by probing the objects themselves:
autograd (ae_lib.autograd: inference tensors, in-place residual adds), the text engine (base.find_text_engine),
UNet patcher options (base.patcher_problem), the prompt-schedule signature (ae_webui.tokenize), infotext
serialisation (ae_webui.state.freeze_infotext), whether create_infotext calls callables (`infotext_callables`)
and whether the Script API has the per-sampling hook A&E installs from (`standing_problem`). Everything else in
ae_webui calls the returned object and imports no host-only module itself.
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


def standing_problem() -> str | None:
    """Why A&E cannot act in this host at all, known at process(); None where it can.

    A&E installs on the sampler in the Script hook `process_before_every_sampling` (and removes in `post_sample`).
    A Script API without it (SD.Next, whose sampler is a diffusers pipeline with `callback_on_step_end` as its
    per-step hook) never calls it, so without this check A&E would silently do nothing."""
    from modules import scripts

    if callable(getattr(scripts.Script, "process_before_every_sampling", None)):
        return None
    from modules import shared

    pipeline = _pipeline_name(getattr(shared, "sd_model", None))
    how = f"samples through a diffusers pipeline ({pipeline})" if pipeline else "has no per-sampling script hook"
    return (f"this WebUI {how} and never calls the script hook process_before_every_sampling, where A&E "
            "attaches to the sampler; A&E for diffusers pipelines is not available here yet")
