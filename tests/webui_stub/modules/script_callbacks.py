"""Stand-in for modules/script_callbacks.py (v1.10.1): global callback lists; every runner catches, reports
and continues."""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from modules import errors, shared


def report_exception(c: ScriptCallback, job: str) -> None:
    """modules/script_callbacks.py:report_exception"""
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


class CFGDenoiserParams:
    """modules/script_callbacks.py:CFGDenoiserParams -- same positional order as v1.10.1."""

    def __init__(
        self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    """modules/script_callbacks.py:CFGDenoisedParams"""

    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    """modules/script_callbacks.py:AfterCFGCallbackParams"""

    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class ExtraNoiseParams:
    """modules/script_callbacks.py:ExtraNoiseParams"""

    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


class ImageGridLoopParams:
    """modules/script_callbacks.py:ImageGridLoopParams"""

    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclasses.dataclass
class ScriptCallback:
    """modules/script_callbacks.py:ScriptCallback"""

    script: str
    callback: Any
    name: str = "unnamed"


def _extension_name(filename: str) -> str:
    # modules/extensions.py:find_extension -- the folder that holds scripts/, else 'base'
    parts = os.path.normpath(filename).split(os.sep)
    if "scripts" in parts[:-1]:
        idx = len(parts) - 1 - parts[::-1].index("scripts")
        if idx >= 1:
            return parts[idx - 1].lower()
    return "base"


def add_callback(
    callbacks: list, fun, *, name: str | None = None, category: str = "unknown", filename: str | None = None
) -> None:
    """modules/script_callbacks.py:add_callback -- unique name '<ext>/<file>/<category>[/<name>][-N]'."""
    if filename is None:
        stack = [x for x in inspect.stack() if x.filename != __file__]
        filename = stack[0].filename if stack else "unknown file"
    callback_name = f"{_extension_name(filename)}/{os.path.basename(filename)}/{category}"
    if name is not None:
        callback_name += f"/{name}"
    unique = callback_name
    for index in range(1000):
        if not any(x.name == unique for x in callbacks):
            break
        unique = f"{callback_name}-{index + 1}"
    callbacks.append(ScriptCallback(filename, fun, unique))


def sort_callbacks(category: str, unordered_callbacks: list, *, enable_user_sort: bool = True) -> list:
    """modules/script_callbacks.py:sort_callbacks -- no metadata.ini ordering here; only the user's
    opts.prioritized_callbacks_<category> list moves entries to the front."""
    callbacks = unordered_callbacks.copy()
    if enable_user_sort:
        for name in reversed(getattr(shared.opts, "prioritized_callbacks_" + category, [])):
            index = next((i for i, cb in enumerate(callbacks) if cb.name == name), None)
            if index is not None:
                callbacks.insert(0, callbacks.pop(index))
    return callbacks


def ordered_callbacks(category: str, unordered_callbacks: list | None = None, *, enable_user_sort: bool = True) -> list:
    """modules/script_callbacks.py:ordered_callbacks -- cached per category while the length is unchanged."""
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get("callbacks_" + category, [])
    if not enable_user_sort:
        return sort_callbacks(category, unordered_callbacks, enable_user_sort=False)
    callbacks = ordered_callbacks_map.get(category)
    if callbacks is not None and len(callbacks) == len(unordered_callbacks):
        return callbacks
    callbacks = sort_callbacks(category, unordered_callbacks)
    ordered_callbacks_map[category] = callbacks
    return callbacks


_CATEGORIES = (
    "app_started",
    "model_loaded",
    "ui_tabs",
    "ui_train_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "extra_noise",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "before_component",
    "after_component",
    "image_grid",
    "infotext_pasted",
    "script_unloaded",
    "before_ui",
    "on_reload",
    "list_optimizers",
    "list_unets",
    "before_token_counter",
)
callback_map: dict[str, list] = {f"callbacks_{c}": [] for c in _CATEGORIES}  # modules/script_callbacks.py:callback_map
ordered_callbacks_map: dict[str, list] = {}


def clear_callbacks() -> None:
    """modules/script_callbacks.py:clear_callbacks (called by scripts.load_scripts)"""
    for callback_list in callback_map.values():
        callback_list.clear()
    ordered_callbacks_map.clear()


def _run(category: str, job: str, *args, reverse: bool = False) -> None:
    # shared body of the *_callback runners: call in order, report exceptions, continue
    callbacks = ordered_callbacks(category)
    for c in reversed(callbacks) if reverse else callbacks:
        try:
            c.callback(*args)
        except Exception:
            report_exception(c, job)


def model_loaded_callback(sd_model) -> None:
    """modules/script_callbacks.py:model_loaded_callback"""
    _run("model_loaded", "model_loaded_callback", sd_model)


def extra_noise_callback(params: ExtraNoiseParams) -> None:
    """modules/script_callbacks.py:extra_noise_callback"""
    _run("extra_noise", "callbacks_extra_noise", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    """modules/script_callbacks.py:cfg_denoiser_callback"""
    _run("cfg_denoiser", "cfg_denoiser_callback", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    """modules/script_callbacks.py:cfg_denoised_callback"""
    _run("cfg_denoised", "cfg_denoised_callback", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    """modules/script_callbacks.py:cfg_after_cfg_callback"""
    _run("cfg_after_cfg", "cfg_after_cfg_callback", params)


def image_grid_callback(params: ImageGridLoopParams) -> None:
    """modules/script_callbacks.py:image_grid_callback"""
    _run("image_grid", "image_grid", params)


def infotext_pasted_callback(infotext: str, params: dict[str, Any]) -> None:
    """modules/script_callbacks.py:infotext_pasted_callback"""
    _run("infotext_pasted", "infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:
    """modules/script_callbacks.py:script_unloaded_callback -- runs in reverse order"""
    _run("script_unloaded", "script_unloaded", reverse=True)


def ui_settings_callback() -> None:
    """modules/script_callbacks.py:ui_settings_callback (run by modules/ui_settings.py:UiSettings.create_ui)"""
    _run("ui_settings", "ui_settings")


def before_ui_callback() -> None:
    """modules/script_callbacks.py:before_ui_callback -- runs in reverse order"""
    _run("before_ui", "before_ui", reverse=True)


def remove_callbacks_for_function(callback_func) -> None:
    """modules/script_callbacks.py:remove_callbacks_for_function -- from the lists and the ordered caches"""
    for callback_list in [*callback_map.values(), *ordered_callbacks_map.values()]:
        for cb in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(cb)


def remove_current_script_callbacks() -> None:
    """modules/script_callbacks.py:remove_current_script_callbacks -- removes the caller file's callbacks"""
    stack = [x for x in inspect.stack() if x.filename != __file__]
    filename = stack[0].filename if stack else "unknown file"
    if filename == "unknown file":
        return
    for callback_list in [*callback_map.values(), *ordered_callbacks_map.values()]:
        for cb in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(cb)


def _register(category: str):
    # the on_<category>(callback, *, name=None) registration functions of v1.10.1
    def register(callback, *, name: str | None = None) -> None:
        add_callback(callback_map[f"callbacks_{category}"], callback, name=name, category=category)

    register.__name__ = f"on_{category}"
    return register


on_app_started = _register("app_started")
on_model_loaded = _register("model_loaded")
on_ui_tabs = _register("ui_tabs")
on_ui_settings = _register("ui_settings")
on_before_image_saved = _register("before_image_saved")
on_image_saved = _register("image_saved")
on_extra_noise = _register("extra_noise")
on_cfg_denoiser = _register("cfg_denoiser")
on_cfg_denoised = _register("cfg_denoised")
on_cfg_after_cfg = _register("cfg_after_cfg")
on_before_component = _register("before_component")
on_after_component = _register("after_component")
on_image_grid = _register("image_grid")
on_infotext_pasted = _register("infotext_pasted")
on_script_unloaded = _register("script_unloaded")
on_before_ui = _register("before_ui")
on_before_reload = _register("on_reload")
on_list_optimizers = _register("list_optimizers")
on_list_unets = _register("list_unets")
on_before_token_counter = _register("before_token_counter")
