"""X/Y/Z plot axes (scripts/xyz_grid.py's AxisOption), writing overrides into `p.ae_overrides`.

Each cell runs on a shallow copy of p, so an axis stores a NEW dict on the copy; `process()` merges it over
the UI values through the same parameter model (parse_named), so axes are validated like the UI and API.

The hosts' AxisOption differ: A1111/Forge take `format_value=`, SD.Next `fmt=` (scripts/xyz/xyz_grid_classes.py);
the keyword is read from the class's signature. Everything the X/Y/Z script calls back is guarded: only `confirm`
raises, and only for a value the parameter model rejects (the X/Y/Z protocol for refusing a grid before it runs).
"""

from __future__ import annotations

import inspect
from typing import Any

from modules import scripts

from ae_lib.params import SPECS, parse_named
from ae_webui.boundary import guarded
from ae_webui.state import LOG

OVERRIDES = "ae_overrides"
PREFIX = "[Attend and Excite] "
AXES = (("enabled", "On/off", bool), ("subjects", "Subjects", str), ("step_size", "Step size", float),
        ("steps_altered", "Steps altered", float), ("objective", "Objective", str), ("groups", "Groups", str))


def _apply(name: str):
    @guarded(f"the X/Y/Z axis {name}")
    def apply(p: Any, x: Any, xs: Any) -> None:
        setattr(p, OVERRIDES, {**getattr(p, OVERRIDES, {}), name: x})
        if name != "enabled":
            getattr(p, OVERRIDES)["enabled"] = getattr(p, OVERRIDES).get("enabled", True)

    return apply


def _problems(name: str, xs: list[Any]) -> list[str]:
    try:
        return [e for x in xs for e in parse_named({name: x}).errors]
    except Exception:  # a bug of ours must not stop the grid; process() reports the value again
        LOG.exception("could not check the X/Y/Z values for %s", name)
        return []


def _confirm(name: str):
    def confirm(p: Any, xs: list[Any]) -> None:
        problems = _problems(name, xs)
        if problems:
            raise RuntimeError(f"{PREFIX}{'; '.join(problems)}")

    return confirm


def _xyz_module() -> Any | None:
    for data in scripts.scripts_data:
        if data.script_class.__module__ == "xyz_grid.py":
            return data.module
    return None


def register_axes() -> None:
    """Called from on_before_ui (every UI build): idempotent."""
    module = _xyz_module()
    if module is None:
        LOG.info("X/Y/Z plot script not found; no A&E axes")
        return
    if any(getattr(opt, "label", "").startswith(PREFIX) for opt in module.axis_options):
        return
    fmt = _format_keyword(module.AxisOption)
    for name, label, kind in AXES:
        kwargs: dict[str, Any] = {"confirm": _confirm(name)}
        if kind is bool:
            kwargs = {"choices": lambda: ["True", "False"]}
        elif SPECS[name].choices:  # a dropdown of the parameter model's values (the objectives)
            kwargs["choices"] = _choices(name)
        if fmt is None:  # neither keyword: the formatter is the fourth positional parameter in every host
            option = module.AxisOption(PREFIX + label, _axis_type(kind), _apply(name), _format(name), **kwargs)
        else:
            option = module.AxisOption(PREFIX + label, _axis_type(kind), _apply(name), **{fmt: _format(name)}, **kwargs)
        module.axis_options.append(option)


def _choices(name: str):
    def choices() -> list[str]:
        return list(SPECS[name].choices)

    return choices


def _format_keyword(axis_option: Any) -> str | None:
    """The keyword this host's AxisOption takes the value formatter by: `format_value` (A1111) or `fmt` (SD.Next)."""
    try:
        parameters = inspect.signature(axis_option).parameters
    except (TypeError, ValueError):
        return None
    return next((k for k in ("format_value", "fmt") if k in parameters), None)


def _axis_type(kind: type) -> Any:
    return str if kind is bool else kind


def _format(name: str):
    label = SPECS[name].label.split(" (")[0]

    def format_value(p: Any, opt: Any, x: Any) -> str:
        return f"{label}: {x}"

    return format_value
