"""Stand-in for modules/scripts.py (v1.10.1): Script, script loading, ScriptRunner UI/arg bookkeeping and hook
dispatch (each hook gets p.script_args[args_from:args_to]; exceptions are reported, never raised)."""

from __future__ import annotations

import inspect
import os
import sys
from collections import namedtuple
from typing import Any

import gradio as gr
from modules import errors, paths, script_callbacks, script_loading
from modules._script_base import (  # noqa: F401 - re-exported: modules.scripts.Script etc.
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostSampleArgs,
    Script,
    ScriptBuiltinUI,
)

current_basedir = paths.script_path


def basedir() -> str:
    """modules/scripts.py:basedir -- the extension folder while its script file is being imported."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list[ScriptClassData] = []


def _list_py(folder: str, base: str) -> list[ScriptFile]:
    # modules/extensions.py:Extension.list_files / scripts.list_scripts: files directly in the folder, sorted
    if not os.path.isdir(folder):
        return []
    return [
        ScriptFile(base, name, os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if os.path.isfile(os.path.join(folder, name)) and os.path.splitext(name)[1].lower() == ".py"
    ]


def load_scripts(extension_dir: str | None = None, *extra_extension_dirs: str) -> None:
    """modules/scripts.py:load_scripts -- clears callbacks and scripts_data, imports webui-root scripts/ (the
    X/Y/Z stand-in), then each extension's scripts/*.py (extension folder prepended to sys.path and returned by
    basedir() during the import), then modules/processing_scripts/*.py; registers every Script subclass found in
    each module's namespace (imported ones included). No metadata.ini ordering."""
    module_obj = sys.modules[__name__]
    scripts_data.clear()
    script_callbacks.clear_callbacks()
    ext_dirs = [d for d in (extension_dir, *extra_extension_dirs) if d]
    files = _list_py(os.path.join(paths.script_path, "scripts"), paths.script_path)
    for d in ext_dirs:
        files += _list_py(os.path.join(d, "scripts"), os.path.abspath(d))
    files += _list_py(os.path.join(paths.script_path, "modules", "processing_scripts"), paths.script_path)

    syspath = sys.path
    for scriptfile in files:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir, *sys.path]
            module_obj.current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            for obj in module.__dict__.values():  # register_scripts_from_module
                if inspect.isclass(obj) and issubclass(obj, Script):
                    scripts_data.append(ScriptClassData(obj, scriptfile.path, scriptfile.basedir, module))
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            module_obj.current_basedir = paths.script_path

    module_obj.scripts_txt2img = ScriptRunner()
    module_obj.scripts_img2img = ScriptRunner()


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    """modules/scripts.py:wrap_call"""
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    """modules/scripts.py:ScriptRunner"""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.titles: list[str] = []
        self.title_map: dict[str, Script] = {}
        self.infotext_fields: list = []
        self.paste_field_names: list = []
        self.inputs: list = [None]
        self.callback_map: dict[str, Any] = {}
        self.on_before_component_elem_id: dict = {}
        self.on_after_component_elem_id: dict = {}

    def initialize_scripts(self, is_img2img: bool) -> None:
        """modules/scripts.py:ScriptRunner.initialize_scripts -- one instance per tab; AlwaysVisible -> alwayson."""
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for script_data in scripts_data:
            try:
                script = script_data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {script_data.module}: ", exc_info=True)
                continue
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        self.callback_map.clear()

    def create_script_ui(self, script: Script) -> None:
        """modules/scripts.py:ScriptRunner.create_script_ui"""
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script: Script) -> None:
        """modules/scripts.py:ScriptRunner.create_script_ui_inner -- name, api_info, infotext/paste fields, args_to."""
        from modules.api import models as api_models

        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            arg_info = api_models.ScriptArg(label=control.label or "")
            for field in ("value", "minimum", "maximum", "step"):
                v = getattr(control, field, None)
                if v is not None:
                    setattr(arg_info, field, v)
            choices = getattr(control, "choices", None)
            if choices is not None:
                arg_info.choices = [x[0] if isinstance(x, tuple) else x for x in choices]
            api_args.append(arg_info)
        script.api_info = api_models.ScriptInfo(
            name=script.name, is_img2img=script.is_img2img, is_alwayson=script.alwayson, args=api_args
        )
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None) -> None:
        """modules/scripts.py:ScriptRunner.setup_ui_for_section"""
        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def prepare_ui(self) -> None:
        """modules/scripts.py:ScriptRunner.prepare_ui"""
        self.inputs = [None]

    def setup_ui(self) -> list:
        """modules/scripts.py:ScriptRunner.setup_ui -- section-None alwayson scripts, the 'Script' dropdown in
        inputs[0], then the selectable scripts."""
        all_titles = [wrap_call(s.title, s.filename, "title") or s.filename for s in self.scripts]
        self.title_map = {title.lower(): s for title, s in zip(all_titles, self.scripts, strict=False)}
        self.titles = [
            wrap_call(s.title, s.filename, "title") or f"{s.filename} [error]" for s in self.selectable_scripts
        ]
        self.setup_ui_for_section(None)
        dropdown = gr.Dropdown(
            label="Script", elem_id="script_list", choices=["None", *self.titles], value="None", type="index"
        )
        self.inputs[0] = dropdown
        self.setup_ui_for_section(None, self.selectable_scripts)
        self.infotext_fields.append((dropdown, lambda x: gr.update(value=x.get("Script", "None"))))
        return self.inputs

    def run(self, p, *args):
        """modules/scripts.py:ScriptRunner.run -- args[0] is the 1-based index of the selected script."""
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        return script.run(p, *args[script.args_from : script.args_to])

    def list_scripts_for_method(self, method_name: str) -> list[Script]:
        """modules/scripts.py:ScriptRunner.list_scripts_for_method"""
        if method_name in ("before_component", "after_component"):
            return self.scripts
        return self.alwayson_scripts

    def ordered_scripts(self, method_name: str) -> list[Script]:
        """modules/scripts.py:ScriptRunner.ordered_callbacks/create_ordered_callbacks_list -- only scripts whose
        class overrides the hook, cached per hook while the script count is unchanged."""
        script_list = self.list_scripts_for_method(method_name)
        category = f"script_{method_name}"
        count, callbacks = self.callback_map.get(category, (-1, None))
        if callbacks is None or count != len(script_list):
            callbacks = []
            for script in script_list:
                if getattr(script.__class__, method_name, None) == getattr(Script, method_name, None):
                    continue
                script_callbacks.add_callback(
                    callbacks, script, category=category, name=script.__class__.__name__, filename=script.filename
                )
            callbacks = script_callbacks.sort_callbacks(category, callbacks)
            self.callback_map[category] = len(script_list), callbacks
        return [x.callback for x in callbacks]

    def _dispatch(self, method: str, p, *lead, label: str | None = None, **kwargs) -> None:
        # body shared by ScriptRunner.process/process_batch/...: slice args, call, report and continue
        for script in self.ordered_scripts(method):
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, method)(p, *lead, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {label or method}: {script.filename}", exc_info=True)

    def before_process(self, p) -> None:
        self._dispatch("before_process", p)

    def process(self, p) -> None:
        self._dispatch("process", p)

    def process_before_every_sampling(self, p, **kwargs) -> None:
        self._dispatch("process_before_every_sampling", p, **kwargs)

    def before_process_batch(self, p, **kwargs) -> None:
        self._dispatch("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs) -> None:
        self._dispatch("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs) -> None:
        self._dispatch("process_batch", p, **kwargs)

    def postprocess(self, p, processed) -> None:
        self._dispatch("postprocess", p, processed)

    def postprocess_batch(self, p, images, **kwargs) -> None:
        self._dispatch("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs) -> None:
        self._dispatch("postprocess_batch_list", p, pp, **kwargs)

    def post_sample(self, p, ps: PostSampleArgs) -> None:
        self._dispatch("post_sample", p, ps)

    def on_mask_blend(self, p, mba: MaskBlendArgs) -> None:
        self._dispatch("on_mask_blend", p, mba, label="post_sample")  # v1.10.1 reuses that message

    def postprocess_image(self, p, pp: PostprocessImageArgs) -> None:
        self._dispatch("postprocess_image", p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs) -> None:
        self._dispatch("postprocess_maskoverlay", p, ppmo, label="postprocess_image")

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs) -> None:
        self._dispatch("postprocess_image_after_composite", p, pp)

    def before_hr(self, p) -> None:
        self._dispatch("before_hr", p)

    def setup_scrips(self, p, *, is_ui: bool = True) -> None:
        """modules/scripts.py:ScriptRunner.setup_scrips (sic) -- API calls skip setup_for_ui_only scripts."""
        for script in self.ordered_scripts("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script.setup(p, *p.script_args[script.args_from : script.args_to])
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def script(self, title: str) -> Script | None:
        """modules/scripts.py:ScriptRunner.script"""
        return self.title_map.get(title.lower())

    def set_named_arg(self, args, script_name, arg_elem_id, value, fuzzy=False):
        """modules/scripts.py:ScriptRunner.set_named_arg -- match control.elem_id of the script named script_name."""
        script = next((x for x in self.scripts if x.name == script_name), None)
        if script is None:
            raise RuntimeError(f"script {script_name} not found")
        for i, control in enumerate(script.controls):
            if (arg_elem_id in control.elem_id) if fuzzy else (arg_elem_id == control.elem_id):
                index = script.args_from + i
                if isinstance(args, tuple):
                    return (*args[:index], value, *args[index + 1 :])
                if isinstance(args, list):
                    args[index] = value
                    return args
                raise RuntimeError(f"args is not a list or tuple, but {type(args)}")
        raise RuntimeError(f"arg_elem_id {arg_elem_id} not found in script {script_name}")


# modules/shared_items.py:ui_reorder_categories_builtin_items
UI_CATEGORIES = [
    "prompt",
    "image",
    "inpaint",
    "sampler",
    "accordions",
    "checkboxes",
    "dimensions",
    "cfg",
    "denoising",
    "seed",
    "batch",
    "override_settings",
]


def create_ui_for_tab(runner: ScriptRunner, is_img2img: bool) -> list:
    """modules/ui.py:create_ui (the scripts part): initialize_scripts, then inside a gr.Blocks prepare_ui and
    per category of ordered_ui_categories() build that section's alwayson scripts; 'accordions' inside its own
    branch, 'scripts' (always last) via setup_ui(). Returns runner.inputs."""
    runner.initialize_scripts(is_img2img=is_img2img)
    extra = [s.section for s in runner.scripts if isinstance(s.section, str) and s.section not in UI_CATEGORIES]
    categories = [*UI_CATEGORIES, *dict.fromkeys(extra), "scripts"]  # shared_items.py:ui_reorder_categories
    with gr.Blocks():
        runner.prepare_ui()
        for category in categories:
            if category == "accordions":
                runner.setup_ui_for_section(category)
            elif category == "scripts":
                runner.setup_ui()
            if category != "accordions":
                runner.setup_ui_for_section(category)
    return runner.inputs


def create_ui() -> None:
    """stand-in for webui.py's UI start: before_ui callbacks, then both tabs' script UIs."""
    script_callbacks.before_ui_callback()
    module_obj = sys.modules[__name__]
    module_obj.scripts_current = module_obj.scripts_txt2img
    create_ui_for_tab(module_obj.scripts_txt2img, False)
    module_obj.scripts_current = module_obj.scripts_img2img
    create_ui_for_tab(module_obj.scripts_img2img, True)


scripts_txt2img: ScriptRunner | None = None
scripts_img2img: ScriptRunner | None = None
scripts_current: ScriptRunner | None = None
