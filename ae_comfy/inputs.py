"""The node's inputs, derived from ae_lib.params.FIELDS (the one parameter model), and their validation.

Every A&E parameter keeps the WebUI's name, default, range and step. Three WebUI fields have no input here:
- `enabled`: the node is the switch (bypass or remove it, or leave its MODEL unused);
- `hires`: every sampler run on the patched MODEL applies A&E where it overlaps the window, so a second
  (hires) KSampler with denoise < 1 is covered by that rule;
- `save_maps`: the maps are always kept (a few KB); the "Attend and Excite maps" node renders them.

A field with `choices` (the objective) is a COMBO of them. The fields the parameter model gained after the node's
first release (from `objective` on, appended to FIELDS) are optional inputs: a workflow saved before them, in the
page's format or the API's, lacks them, and ComfyUI refuses a prompt that lacks a required input; a missing one
takes its default (the paper's objective, no groups), so an old workflow means what it meant.
"""

from __future__ import annotations

from typing import Any

from ae_lib.params import FIELDS, AEParams, FieldSpec, parse_named

NOT_INPUTS = ("enabled", "hires", "save_maps")
PARAM_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.name not in NOT_INPUTS)
PARAM_NAMES = tuple(f.name for f in PARAM_FIELDS)
FIRST_LATER_FIELD = "objective"  # the first field after the node's first release: it and every later one optional
OPTIONAL_NAMES = PARAM_NAMES[PARAM_NAMES.index(FIRST_LATER_FIELD):]
TYPES = {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}


def input_spec(spec: FieldSpec) -> tuple[Any, dict[str, Any]]:
    """One ComfyUI input: (type or COMBO choices, options) with the field's default, range, step and help as
    tooltip."""
    options: dict[str, Any] = {"default": spec.default, "tooltip": f"{spec.label}. {spec.help}".strip()}
    if spec.kind in (int, float):
        options.update(min=spec.minimum, max=spec.maximum, step=spec.step)
        if spec.kind is float:
            options["round"] = False  # keep typed values as typed (the frontend would round to `step`)
    if spec.choices:  # a COMBO: ComfyUI refuses any other value when the prompt is queued
        return list(spec.choices), options
    if spec.kind is str:
        options["multiline"] = False
    return TYPES[spec.kind], options


def param_inputs(optional: bool = False) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The required inputs (the node's first release), or with `optional` the later ones."""
    return {f.name: input_spec(f) for f in PARAM_FIELDS if (f.name in OPTIONAL_NAMES) == optional}


def to_params(values: dict[str, Any]) -> AEParams:
    """AEParams from the node's values (enabled); a bad value raises ValueError naming every problem."""
    result = parse_named({"enabled": True, **{k: values[k] for k in PARAM_NAMES if k in values}})
    if not result.ok:
        raise ValueError("Attend and Excite: " + "; ".join(result.errors))
    return result.params


def validate(values: dict[str, Any]) -> bool | str:
    """ComfyUI's VALIDATE_INPUTS answer: True, or the problems as one message (the prompt is then refused)."""
    result = parse_named({k: v for k, v in values.items() if k in PARAM_NAMES})
    return True if result.ok else "; ".join(result.errors)
