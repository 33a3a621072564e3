"""Stand-in for scripts/xyz_grid.py (v1.10.1), loaded by modules.scripts.load_scripts from the webui-root scripts/
folder under the module name "xyz_grid.py". Covered: AxisOption(+Txt2Img/Img2Img), a subset of axis_options,
the 18-control ui() (axis list copied at UI build time), value parsing (comma lists, int ranges), and the cell loop
(pc = copy(p), x/y/z apply, process_images(pc)). No grid image or legend is drawn."""

import re
from copy import copy

import gradio as gr
import numpy as np
from modules import errors, processing, scripts, sd_samplers, sd_schedulers
from modules.processing import Processed, process_images
from modules.shared import opts, state


def apply_field(field):
    """scripts/xyz_grid.py:apply_field -- setattr(p, field, x)"""
    def fun(p, x, xs):
        setattr(p, field, x)
    return fun


def apply_prompt(p, x, xs):
    """scripts/xyz_grid.py:apply_prompt -- Prompt S/R: replace xs[0] by x in prompt and negative prompt."""
    if xs[0] not in p.prompt and xs[0] not in p.negative_prompt:
        raise RuntimeError(f"Prompt S/R did not find {xs[0]} in prompt or negative prompt.")
    p.prompt = p.prompt.replace(xs[0], x)
    p.negative_prompt = p.negative_prompt.replace(xs[0], x)


def apply_override(field, boolean: bool = False):
    """scripts/xyz_grid.py:apply_override -- p.override_settings[field] = x"""
    def fun(p, x, xs):
        if boolean:
            x = x.lower() == "true"
        p.override_settings[field] = x
    return fun


def confirm_samplers(p, xs):
    """scripts/xyz_grid.py:confirm_samplers"""
    for x in xs:
        if x.lower() not in sd_samplers.samplers_map:
            raise RuntimeError(f"Unknown sampler: {x}")


def format_value_add_label(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def format_value(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return x


def do_nothing(p, x, xs):
    pass


def format_nothing(p, opt, x):
    return ""


class AxisOption:
    """scripts/xyz_grid.py:AxisOption -- apply(p, x, xs), format_value(p, opt, x), confirm(p, xs),
    choices() -> list, prepare(text) -> list, cost (slow axes go to the outer loop)."""

    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0,
                 choices=None, prepare=None):
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


axis_options = [  # scripts/xyz_grid.py:axis_options (subset, same labels and order)
    AxisOption("Nothing", str, do_nothing, format_value=format_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Var. seed", int, apply_field("subseed")),
    AxisOption("Var. strength", float, apply_field("subseed_strength")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOptionTxt2Img("Hires steps", int, apply_field("hr_second_pass_steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOptionImg2Img("Image CFG Scale", float, apply_field("image_cfg_scale")),
    AxisOption("Prompt S/R", str, apply_prompt, format_value=format_value),
    AxisOptionTxt2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value,
                      confirm=confirm_samplers, choices=lambda: [x.name for x in sd_samplers.samplers
                                                                 if x.name not in opts.hide_samplers]),
    AxisOptionImg2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value,
                      confirm=confirm_samplers, choices=lambda: [x.name for x in sd_samplers.samplers_for_img2img
                                                                 if x.name not in opts.hide_samplers]),
    AxisOption("Schedule type", str, apply_field("scheduler"),
               choices=lambda: [x.label for x in sd_schedulers.schedulers]),
    AxisOption("Eta", float, apply_field("eta")),
    AxisOption("Clip skip", int, apply_override("CLIP_stop_at_last_layers")),
    AxisOption("Denoising", float, apply_field("denoising_strength")),
]

_INT_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")  # a-b (+step)
_INT_COUNT = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])?\s*")  # a-b [count]


def parse_values(opt, text, dropdown=None, csv_mode=False):
    """scripts/xyz_grid.py:Script.run inner process_axis (int ranges 'a-b', 'a-b (+s)', 'a-b [n]'; floats and the
    rest comma-separated), then confirm()."""
    if opt.label == "Nothing":
        return [0]
    if opt.choices is not None and not csv_mode:
        values = list(dropdown or [])
    elif opt.prepare is not None:
        values = opt.prepare(text)
    else:
        values = [v.strip() for v in text.split(",") if v.strip()]
    if opt.type is int:
        out = []
        for val in values:
            m, mc = _INT_RANGE.fullmatch(val), _INT_COUNT.fullmatch(val)
            if m is not None:
                start, end = int(m.group(1)), int(m.group(2))
                step = int(m.group(3)) if m.group(3) is not None else 1
                out += list(range(start, end + 1, step))
            elif mc is not None:
                start, end, num = int(mc.group(1)), int(mc.group(2)), int(mc.group(3))
                out += [int(x) for x in np.linspace(start, end, num).tolist()]
            else:
                out.append(val)
        values = out
    values = [opt.type(x) for x in values]
    if opt.confirm:
        opt.confirm(None, values)
    return values


def run_cells(p, x_opt, xs, y_opt=None, ys=None, z_opt=None, zs=None) -> list[Processed]:
    """scripts/xyz_grid.py:Script.run inner cell, looped z (outer), y, x (inner) for equal costs: each cell is
    pc = copy(p) (shallow: script_args and extra_generation_params are SHARED), pc.styles copied, apply x, y, z,
    process_images(pc); an exception is displayed and gives an empty Processed."""
    nothing = axis_options[0]
    y_opt, z_opt = y_opt or nothing, z_opt or nothing
    ys, zs = ys or [0], zs or [0]
    results = []
    for z in zs:
        for y in ys:
            for x in xs:
                if state.interrupted or state.stopping_generation:
                    results.append(Processed(p, [], p.seed, ""))
                    continue
                pc = copy(p)
                pc.styles = pc.styles[:]
                x_opt.apply(pc, x, xs)
                y_opt.apply(pc, y, ys)
                z_opt.apply(pc, z, zs)
                try:
                    res = process_images(pc)
                except Exception as e:
                    errors.display(e, "generating image for xyz plot")
                    res = Processed(p, [], p.seed, "")
                results.append(res)
    return results


class Script(scripts.Script):
    """scripts/xyz_grid.py:Script -- a selectable script ('X/Y/Z plot')."""

    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) is AxisOption or x.is_img2img == is_img2img]
        labels = [x.label for x in self.current_axis_options]
        controls = []
        for axis, default in (("x", 1), ("y", 0), ("z", 0)):
            controls += [gr.Dropdown(label=f"{axis.upper()} type", choices=labels, value=labels[default],
                                     type="index", elem_id=self.elem_id(f"{axis}_type")),
                         gr.Textbox(label=f"{axis.upper()} values", lines=1, elem_id=self.elem_id(f"{axis}_values")),
                         gr.Dropdown(label=f"{axis.upper()} values", visible=False, multiselect=True, interactive=True)]
        controls += [gr.Checkbox(label="Draw legend", value=True, elem_id=self.elem_id("draw_legend")),
                     gr.Checkbox(label="Include Sub Images", value=False, elem_id=self.elem_id("include_lone_images")),
                     gr.Checkbox(label="Include Sub Grids", value=False, elem_id=self.elem_id("include_sub_grids")),
                     gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=self.elem_id("no_fixed_seeds")),
                     gr.Checkbox(label="Vary seeds for X", value=False, elem_id=self.elem_id("vary_seeds_x")),
                     gr.Checkbox(label="Vary seeds for Y", value=False, elem_id=self.elem_id("vary_seeds_y")),
                     gr.Checkbox(label="Vary seeds for Z", value=False, elem_id=self.elem_id("vary_seeds_z")),
                     gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2,
                               elem_id=self.elem_id("margin_size")),
                     gr.Checkbox(label="Use text inputs instead of dropdowns", value=False,
                                 elem_id=self.elem_id("csv_mode"))]
        return controls

    def run(self, p, x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values,
            z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x,
            vary_seeds_y, vary_seeds_z, margin_size, csv_mode):
        if not no_fixed_seeds:
            processing.fix_seed(p)
        if not opts.return_grid:
            p.batch_size = 1
        opts_ = [self.current_axis_options[t or 0] for t in (x_type, y_type, z_type)]
        vals = [parse_values(o, v, d, csv_mode) for o, v, d in zip(opts_, (x_values, y_values, z_values),
                                                                    (x_values_dropdown, y_values_dropdown,
                                                                     z_values_dropdown), strict=False)]
        results = run_cells(p, opts_[0], vals[0], opts_[1], vals[1], opts_[2], vals[2])
        first = next((r for r in results if r.images), results[0])
        first.images = [im for r in results for im in r.images]
        first.infotexts = [t for r in results for t in r.infotexts]
        return first
