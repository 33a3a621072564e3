"""X/Y/Z plot axes (scripts/xyz_grid.py's AxisOption), writing overrides into `p.ae_overrides`.

Each cell runs on a shallow copy of p, so an axis stores a NEW dict on the copy; `process()` merges it over
the UI values through the same parameter model (parse_named), so axes are validated like the UI and API.
"""

from __future__ import annotations

from typing import Any

from modules import scripts

from ae_lib.params import SPECS, parse_named
from ae_webui.state import LOG

OVERRIDES = "ae_overrides"
PREFIX = "[Attend and Excite] "
AXES = (("enabled", "On/off", bool), ("subjects", "Subjects", str), ("step_size", "Step size", float),
        ("steps_altered", "Steps altered", float))


def _apply(name: str):
    def apply(p: Any, x: Any, xs: Any) -> None:
        setattr(p, OVERRIDES, {**getattr(p, OVERRIDES, {}), name: x})
        if name != "enabled":
            getattr(p, OVERRIDES)["enabled"] = getattr(p, OVERRIDES).get("enabled", True)

    return apply


def _confirm(name: str):
    def confirm(p: Any, xs: list[Any]) -> None:
        for x in xs:
            result = parse_named({name: x})
            if not result.ok:
                raise RuntimeError(f"{PREFIX}{'; '.join(result.errors)}")

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
    for name, label, kind in AXES:
        kwargs: dict[str, Any] = {"confirm": _confirm(name)}
        if kind is bool:
            kwargs = {"choices": lambda: ["True", "False"]}
        module.axis_options.append(
            module.AxisOption(PREFIX + label, _axis_type(kind), _apply(name), format_value=_format(name), **kwargs)
        )


def _axis_type(kind: type) -> Any:
    return str if kind is bool else kind


def _format(name: str):
    label = SPECS[name].label.split(" (")[0]

    def format_value(p: Any, opt: Any, x: Any) -> str:
        return f"{label}: {x}"

    return format_value
