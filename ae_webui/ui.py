"""The accordion, built from the parameter model; and the infotext paste-back fields for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
from modules.ui_components import InputAccordion

from ae_lib.objectives import OBJECTIVES
from ae_lib.params import FIELDS, SPECS, FieldSpec, infotext_enabled

ADVANCED = ("steps_altered", "thresholds", "step_size", "max_refine", "smoothing", "sigma", "attention_res", "hires")
ElemId = Callable[[str], str]


def _control(spec: FieldSpec, elem_id: ElemId) -> Any:
    eid = elem_id(spec.name)
    if spec.kind is bool:
        return gr.Checkbox(value=spec.default, label=spec.label, elem_id=eid)
    if spec.choices:
        return gr.Dropdown(choices=list(spec.choices), value=spec.default, label=spec.label, elem_id=eid)
    if spec.kind is str:
        return gr.Textbox(value=spec.default, label=spec.label, lines=1, placeholder=_placeholder(spec.name),
                          elem_id=eid)
    return gr.Slider(
        minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=spec.default, label=spec.label, elem_id=eid
    )


def _placeholder(name: str) -> str | None:
    if name == "subjects":
        return "cat, frog  (words, or column indices such as 2, 5)"
    if name == "groups":
        takers = ", ".join(n for n, kind in OBJECTIVES.items() if kind.takes_groups)
        return f"red car; blue bird  (for the objectives {takers}; shift-click tokens to build them)"
    return None


def tab_name(script: Any) -> str:
    """The tab a script instance is built for: A1111/Forge set `tabname`, SD.Next sets `parent` ('txt2img',
    'img2img', 'control'); whichever the object has, else the script's own is_img2img."""
    for attr in ("tabname", "parent"):
        value = getattr(script, attr, None)
        if isinstance(value, str) and value:
            return value
    return "img2img" if getattr(script, "is_img2img", False) else "txt2img"


def build(elem_id: ElemId, extra: Callable[[dict[str, Any]], None] | None = None) -> list[Any]:
    """Components in FIELDS order (the script's args and the positional API order).

    `extra(controls)` is called inside the accordion after the Subjects, Objective and Groups boxes, for the token
    table (which fills Subjects and Groups).
    """
    controls: dict[str, Any] = {}
    with InputAccordion(False, label="Attend and Excite", elem_id=elem_id("enable")) as enabled:
        controls["enabled"] = enabled
        with gr.Row():
            controls["subjects"] = _control(SPECS["subjects"], elem_id)
            controls["objective"] = _control(SPECS["objective"], elem_id)
        controls["groups"] = _control(SPECS["groups"], elem_id)
        if extra is not None:
            extra(controls)
        with gr.Accordion("Advanced", open=False, elem_id=elem_id("advanced")):
            for spec in FIELDS:
                if spec.name in ADVANCED:
                    controls[spec.name] = _control(spec, elem_id)
        controls["save_maps"] = _control(SPECS["save_maps"], elem_id)
    return [controls[f.name] for f in FIELDS]


def _paste_value(spec: FieldSpec) -> Callable[[dict], Any]:
    """Infotext with A&E: the written value, or the default (defaults are not written). Without: unchanged."""

    def value(params: dict) -> Any:
        if not infotext_enabled(params):
            return None
        raw = params.get(spec.infotext, spec.default)
        return str(raw) if spec.kind is bool else raw

    return value


def infotext_fields(components: list[Any]) -> list[tuple[Any, Any]]:
    fields: list[tuple[Any, Any]] = []
    for spec, component in zip(FIELDS, components, strict=True):
        if spec.name == "enabled":
            fields.append((component, infotext_enabled))
        elif spec.infotext is not None:
            fields.append((component, _paste_value(spec)))
    return fields
