"""Driving the extension through the WebUI stand-in (tests/webui_stub): start it once, run generations."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from modules import processing, scripts, shared, txt2img
from webui_stub_env import reset_host, start_webui

from ae_lib.params import FIELDS, AEParams

ROOT = Path(__file__).resolve().parent.parent
TITLE = "Attend and Excite"


@cache
def _load_once() -> None:
    start_webui(str(ROOT))


def start() -> None:
    """The WebUI with this extension loaded (once per test session), options and state reset."""
    _load_once()
    reset_host()


def script(runner: Any = None) -> Any:
    return (runner or scripts.scripts_txt2img).script(TITLE)


def ae_args(params: AEParams | None) -> list[Any]:
    params = params or AEParams()
    return [getattr(params, f.name) for f in FIELDS]


def txt2img_p(params: AEParams | None = None, **fields: Any) -> processing.StableDiffusionProcessingTxt2Img:
    runner = scripts.scripts_txt2img
    args = txt2img.ui_default_args(runner)
    ext = script(runner)
    args[ext.args_from : ext.args_to] = ae_args(params)
    defaults = {"prompt": "a cat and a frog", "steps": 6, "sampler_name": "Euler", "seed": 1, "width": 128,
                "height": 128}
    return txt2img.txt2img_create_processing(args, **{**defaults, **fields})


def run_txt2img(params: AEParams | None = None, **fields: Any) -> tuple[processing.Processed, Any]:
    p = txt2img_p(params, **fields)
    return txt2img.txt2img(p), p


def ae(subjects: str = "cat, frog", **values: Any) -> AEParams:
    return AEParams(enabled=True, subjects=subjects, **values)


def model_state() -> list:
    """Everything A&E could leave behind on the model: hooks, instance forwards, requires_grad."""
    model = shared.sd_model
    return [
        (n, type(m), dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks),
         "forward" in m.__dict__)
        for n, m in model.named_modules()
    ] + [(n, p.requires_grad) for n, p in model.named_parameters()]
