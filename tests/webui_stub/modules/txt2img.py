"""Stand-in for modules/txt2img.py (v1.10.1): the UI path. There, p gets the UI values for its own fields, and the
built-in Sampler/Seed/Refiner scripts' setup() copies their slots of script_args into p.steps, p.sampler_name,
p.scheduler, p.seed, ... -- so those values travel in script_args here too."""

from __future__ import annotations

from contextlib import closing

from modules import processing, scripts, shared

# offsets inside the built-in scripts' arg slices (their ui() return order)
_BUILTIN_SLOTS = {"steps": ("Sampler", 0), "sampler_name": ("Sampler", 1), "scheduler": ("Sampler", 2),
                  "seed": ("Seed", 0), "refiner_enable": ("Refiner", 0), "refiner_checkpoint": ("Refiner", 1),
                  "refiner_switch_at": ("Refiner", 2)}


def _submitted(component):
    # what gradio's preprocess hands the Python function: a type="index" dropdown sends the choice's index
    value = component.value
    if getattr(component, "type", None) == "index" and value is not None:
        names = [c[0] if isinstance(c, tuple) else c for c in component.choices]
        return names.index(value) if value in names else None
    return value


def ui_default_args(runner: scripts.ScriptRunner) -> list:
    """What the UI submits untouched: 0 for the 'Script' dropdown (type='index'), then every component's value as
    gradio preprocesses it (the API, by contrast, passes raw JSON values: modules/api/api.py:init_script_args)."""
    return [0, *[_submitted(c) for c in runner.inputs[1:]]]


def set_script_arg(args: list, runner: scripts.ScriptRunner, title: str, offset: int, value) -> list:
    """Write `value` into the `offset`-th control of the script titled `title` (case-insensitive)."""
    script = runner.script(title)
    if script is None:
        raise KeyError(title)
    args[script.args_from + offset] = value
    return args


def txt2img_create_processing(script_args=None, **fields) -> processing.StableDiffusionProcessingTxt2Img:
    """modules/txt2img.py:txt2img_create_processing -- p from the UI fields, p.scripts = scripts_txt2img, then
    p.script_args = args (this runs every script's setup()). Keys of _BUILTIN_SLOTS go into script_args."""
    runner = scripts.scripts_txt2img
    args = list(script_args) if script_args is not None else ui_default_args(runner)
    for key, (title, offset) in _BUILTIN_SLOTS.items():
        if key in fields:
            set_script_arg(args, runner, title, offset, fields.pop(key))
    p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **fields)
    p.scripts = runner
    p.script_args = tuple(args)
    return p


def txt2img(p: processing.StableDiffusionProcessingTxt2Img) -> processing.Processed:
    """modules/txt2img.py:txt2img (+ call_queue's state.begin/end) -- the selected script's run() or process_images,
    inside closing(p) (so p.close() sets p.sampler = None afterwards)."""
    shared.state.begin(job="txt2img")
    try:
        with closing(p):
            processed = scripts.scripts_txt2img.run(p, *p.script_args)
            if processed is None:
                processed = processing.process_images(p)
    finally:
        shared.state.end()
    return processed
