"""Stand-in for modules/api/api.py (v1.10.1): script-arg defaults and request mapping of /sdapi/v1/txt2img, without
FastAPI. A request is a plain dict with the StableDiffusionTxt2ImgProcessingAPI field names."""

from __future__ import annotations

from contextlib import closing
from types import SimpleNamespace
from typing import Any

import gradio as gr
from modules import processing, scripts, sd_samplers, shared


class HTTPException(Exception):
    """fastapi.HTTPException stand-in"""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def script_name_to_index(name: str, scripts_list) -> int:
    """modules/api/api.py:script_name_to_index -- case-insensitive title match, 422 when missing."""
    try:
        return [script.title().lower() for script in scripts_list].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


def get_script(script_name, script_runner):
    """modules/api/api.py:Api.get_script"""
    if script_name is None or script_name == "":
        return None, None
    return script_runner.scripts[script_name_to_index(script_name, script_runner.scripts)]


def get_selectable_script(script_name, script_runner):
    """modules/api/api.py:Api.get_selectable_script"""
    if script_name is None or script_name == "":
        return None, None
    idx = script_name_to_index(script_name, script_runner.selectable_scripts)
    return script_runner.selectable_scripts[idx], idx


def init_default_script_args(script_runner) -> list:
    """modules/api/api.py:Api.init_default_script_args -- [0, None, ...] then, inside a throw-away gr.Blocks, each
    script's ui() is called (twice: once for the truth test, once for the values) and component .value taken."""
    last_arg_index = 1
    for script in script_runner.scripts:
        last_arg_index = max(last_arg_index, script.args_to)
    script_args: list[Any] = [None] * last_arg_index
    script_args[0] = 0
    with gr.Blocks():
        for script in script_runner.scripts:
            if script.ui(script.is_img2img):
                script_args[script.args_from:script.args_to] = [elem.value for elem in script.ui(script.is_img2img)]
    return script_args


def init_script_args(request, default_script_args, selectable_scripts, selectable_idx, script_runner, *,
                     input_script_args=None) -> list:
    """modules/api/api.py:Api.init_script_args -- alwayson_scripts[title]['args'][k] -> script_args[args_from + k]
    for k < min(len(args), args_to - args_from); raw JSON values, no gradio preprocessing."""
    script_args = default_script_args.copy()
    if input_script_args is not None:
        for index, value in input_script_args.items():
            script_args[index] = value
    if selectable_scripts:
        script_args[selectable_scripts.args_from:selectable_scripts.args_to] = request.script_args
        script_args[0] = selectable_idx + 1
    if request.alwayson_scripts:
        for name in request.alwayson_scripts:
            script = get_script(name, script_runner)
            if script is None:
                raise HTTPException(status_code=422, detail=f"always on script {name} not found")
            if script.alwayson is False:
                raise HTTPException(status_code=422, detail="Cannot have a selectable script in the always on "
                                                            "scripts params")
            if "args" in request.alwayson_scripts[name]:
                given = request.alwayson_scripts[name]["args"]
                for idx in range(0, min(script.args_to - script.args_from, len(given))):
                    script_args[script.args_from + idx] = given[idx]
    return script_args


_REQUEST_ONLY = ("script_name", "script_args", "alwayson_scripts", "infotext", "send_images", "save_images",
                 "sampler_index")


def text2imgapi(request: dict, default_script_args: list | None = None) -> processing.Processed:
    """modules/api/api.py:Api.text2imgapi -- sampler/scheduler normalised, p = StableDiffusionProcessingTxt2Img(**args)
    with p.is_api = True, p.scripts = scripts_txt2img, p.script_args = tuple(script_args) (setup() runs here, built-in
    setup_for_ui_only scripts skipped), then process_images(p) or the selected script's run(), inside
    closing(p) and state.begin()/end(). The 'infotext' request field is not covered."""
    runner = scripts.scripts_txt2img
    req = SimpleNamespace(**{"script_name": None, "script_args": [], "alwayson_scripts": {}, **request})
    if default_script_args is None:
        default_script_args = init_default_script_args(runner)
    selectable, selectable_idx = get_selectable_script(req.script_name, runner)
    # modules/api/models.py: sampler_index defaults to "Euler", so a request without sampler_name gets Euler
    sampler, scheduler = sd_samplers.get_sampler_and_scheduler(request.get("sampler_name") or
                                                               request.get("sampler_index", "Euler"),
                                                               request.get("scheduler"))
    args = {k: v for k, v in request.items() if k not in _REQUEST_ONLY}
    args["sampler_name"] = sampler
    if not args.get("scheduler") and scheduler != "Automatic":
        args["scheduler"] = scheduler
    args["do_not_save_samples"] = not request.get("save_images", False)
    args["do_not_save_grid"] = not request.get("save_images", False)
    script_args = init_script_args(req, default_script_args, selectable, selectable_idx, runner)
    with closing(processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **args)) as p:
        p.is_api = True
        p.scripts = runner
        try:
            shared.state.begin(job="scripts_txt2img")
            if selectable is not None:
                p.script_args = script_args
                processed = scripts.scripts_txt2img.run(p, *p.script_args)
            else:
                p.script_args = tuple(script_args)
                processed = processing.process_images(p)
        finally:
            shared.state.end()
    return processed
