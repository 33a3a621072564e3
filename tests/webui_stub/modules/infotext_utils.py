"""Stand-in for modules/infotext_utils.py (v1.10.1): PasteField, quote/unquote, parse_generation_parameters and
the per-field logic of connect_paste's paste_func."""

from __future__ import annotations

import json
import re
from typing import Any

import gradio as gr
from modules import errors, prompt_parser, script_callbacks, shared

# modules/infotext_utils.py:re_param_code -- key (\w then word chars, spaces, '-', '/'), ':', then a
# JSON-quoted value or everything up to the next comma
re_param = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())  # a plain dict in gradio 3.41


class PasteField(tuple):
    """modules/infotext_utils.py:PasteField -- a (component, target) tuple; target is a label or a callable."""

    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


paste_fields: dict[str, dict] = {}


def add_paste_fields(tabname: str, init_img, fields, override_settings_component=None) -> None:
    """modules/infotext_utils.py:add_paste_fields"""
    if fields:
        for i in range(len(fields)):
            if not isinstance(fields[i], PasteField):
                fields[i] = PasteField(*fields[i])
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }


def quote(text):
    """modules/infotext_utils.py:quote -- JSON-quote only values containing ',', newline or ':'."""
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    """modules/infotext_utils.py:unquote"""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


# modules/infotext_utils.py:parse_generation_parameters -- keys added when absent (subset relevant here)
_PARSE_DEFAULTS: dict[str, Any] = {
    "Hires resize-1": 0,
    "Hires resize-2": 0,
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": 32,
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0,
    "Schedule min sigma": 0,
    "Schedule rho": 0,
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
}


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """modules/infotext_utils.py:parse_generation_parameters -- the last line is the parameter line only with
    >= 3 key/value matches; 'NxM' values split into '-1'/'-2'; skip_fields (opts.infotext_skip_pasting) dropped.
    Not covered: style extraction (no styles here), hypernet suffix, old hires-fix and Version back-compat."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting
    res: dict[str, Any] = {}
    prompt, negative_prompt, done_with_prompt = "", "", False
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for k, v in re_param.findall(lastline):
        value = unquote(v) if v[0] == '"' and v[-1] == '"' else v
        m = re_imagesize.match(value)
        if m is not None:
            res[f"{k}-1"], res[f"{k}-2"] = m.group(1), m.group(2)
        else:
            res[k] = value
    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    if "Clip skip" not in res:
        res["Clip skip"] = "1"
    for key, value in _PARSE_DEFAULTS.items():
        res.setdefault(key, value)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False
    attention = prompt_parser.parse_prompt_attention(prompt) + prompt_parser.parse_prompt_attention(negative_prompt)
    if "Emphasis" not in res and len(attention) != len([a for a in attention if a[1] == 1.0 or a[0] == "BREAK"]):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
    for key in skip_fields:
        res.pop(key, None)
    return res


def paste_func(fields, prompt: str) -> list[dict]:
    """modules/infotext_utils.py:connect_paste inner paste_func -- parse, run on_infotext_pasted callbacks, then
    per (component, key): callable -> key(params) (errors reported -> None); label -> params.get(label);
    None -> gr.update() (unchanged); a dict (gr.update) passes through; else cast to type(component.value)
    ('False' -> False for bools; ints go through float()); a failing cast -> gr.update()."""
    params = parse_generation_parameters(prompt)
    script_callbacks.infotext_pasted_callback(prompt, params)
    res = []
    for output, key in fields:
        if callable(key):
            try:
                v = key(params)
            except Exception:
                errors.report(f"Error executing {key}", exc_info=True)
                v = None
        else:
            v = params.get(key, None)
        if v is None:
            res.append(gr.update())
        elif isinstance(v, type_of_gr_update):
            res.append(v)
        else:
            try:
                valtype = type(output.value)
                if valtype is bool and v == "False":
                    val = False
                elif valtype is int:
                    val = float(v)
                else:
                    val = valtype(v)
                res.append(gr.update(value=val))
            except Exception:
                res.append(gr.update())
    return res


def apply_paste(fields, prompt: str) -> dict[Any, Any]:
    """stand-in helper: what the UI would show after pasting -- {component: new value} for each field whose update
    carries a value (components left unchanged are absent)."""
    out = {}
    for (component, _), update in zip(fields, paste_func(fields, prompt), strict=False):
        if "value" in update:
            out[component] = update["value"]
    return out
