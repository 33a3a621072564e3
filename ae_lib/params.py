"""The one parameter model: defaults, bounds, labels, infotext keys, parsing and validation.

The UI builds its controls from FIELDS (in this order, which is also the positional API order), the API
parses positional or named values, infotext writes/reads the `infotext` keys and X/Y/Z uses the same
validators. Nothing else in the extension states a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_THRESHOLDS = "0:0.05, 0.2:0.5, 0.4:0.8"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: type  # bool | int | float | str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    infotext: str | None = None  # None: never written to the generation info
    reference: str = ""  # the reference implementation's value, for the README table
    help: str = ""
    choices: tuple[str, ...] = ()  # a str field's allowed values (a dropdown), empty: free text


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("enabled", "Enable Attend and Excite", bool, False, help="Off by default."),
    FieldSpec(
        "subjects",
        "Subjects",
        str,
        "",
        infotext="AE subjects",
        reference="token indices, e.g. 2,5",
        help="Words or column indices: 'cat, frog', '2, 5', 'frog#2' for the second frog.",
    ),
    FieldSpec(
        "steps_altered",
        "Steps altered (fraction of the schedule)",
        float,
        0.5,
        0.0,
        1.0,
        0.01,
        infotext="AE steps altered",
        reference="25 of 50",
        help="Steps i < round(fraction x N) get the gradient step.",
    ),
    FieldSpec(
        "thresholds",
        "Refinement thresholds (fraction:threshold, ...)",
        str,
        DEFAULT_THRESHOLDS,
        infotext="AE thresholds",
        reference="{0: 0.05, 10: 0.5, 20: 0.8} of 50",
        help="At step round(fraction x N), refine until every subject's score reaches the threshold.",
    ),
    FieldSpec(
        "step_size",
        "Step size (scale factor)",
        float,
        20.0,
        0.0,
        200.0,
        0.5,
        infotext="AE step size",
        reference="20",
        help="alpha_i = scale x sqrt(linspace(1.0, 0.5, N)[i]).",
    ),
    FieldSpec(
        "max_refine",
        "Max refinement iterations",
        int,
        20,
        0,
        100,
        1,
        infotext="AE max refinement",
        reference="20",
        help="0 turns refinement off.",
    ),
    FieldSpec("smoothing", "Smooth attention maps", bool, True, infotext="AE smoothing", reference="on"),
    FieldSpec(
        "sigma",
        "Smoothing sigma",
        float,
        0.5,
        0.05,
        5.0,
        0.05,
        infotext="AE sigma",
        reference="0.5",
        help="Of the reference's 3x3 kernel (its effective sigma is sqrt(2) x this).",
    ),
    FieldSpec(
        "attention_res",
        "Attention resolution (0 = auto: latent/4)",
        int,
        0,
        0,
        256,
        1,
        infotext="AE attention res",
        reference="16 (512 px)",
        help="Height of the attention grid whose cross-attention layers are used.",
    ),
    FieldSpec("hires", "Also apply in the hires-fix pass", bool, False, infotext="AE hires"),
    FieldSpec(
        "save_maps",
        "Save attention maps",
        bool,
        False,
        help="Adds a grid of each subject's map to the gallery and saves it next to the outputs.",
    ),
    # After every older field, so positional API callers that predate them keep their meaning.
    FieldSpec(
        "objective",
        "Objective",
        str,
        "excite",
        infotext="AE objective",
        reference="excite (the paper's)",
        help="excite: every subject appears (the paper); contrast: groups stay apart (CONFORM); bind: each "
        "attribute lands on its subject (SynGen).",
        choices=("excite", "contrast", "bind", "divide"),  # == tuple(ae_lib.objectives.OBJECTIVES) (a test checks)
    ),
    FieldSpec(
        "groups",
        "Groups (attributes with their subject; ...)",
        str,
        "",
        infotext="AE groups",
        help="For objectives that take groups: 'red car; blue bird' (';' between groups, words as in Subjects; a "
        "group's last word is its subject).",
    ),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
# An infotext with either key was made with A&E on: the subjects (written when given) or a non-default objective
# (an objective that picks its subjects from the groups may run without any).
ENABLED_KEYS = ("AE subjects", "AE objective")
SPECS = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class AEParams:
    enabled: bool = False
    subjects: str = ""
    steps_altered: float = 0.5
    thresholds: str = DEFAULT_THRESHOLDS
    step_size: float = 20.0
    max_refine: int = 20
    smoothing: bool = True
    sigma: float = 0.5
    attention_res: int = 0
    hires: bool = False
    save_maps: bool = False
    objective: str = "excite"
    groups: str = ""

    def threshold_pairs(self) -> list[tuple[float, float]]:
        """The refinement thresholds as (fraction, threshold); only valid params reach here."""
        return parse_thresholds(self.thresholds)[0]


@dataclass
class ParseResult:
    params: AEParams
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_thresholds(text: str) -> tuple[list[tuple[float, float]], list[str]]:
    """'fraction:threshold, ...'; empty or 'none' means no refinement."""
    pairs, errors = [], []
    if (text or "").strip().lower() in ("", "none", "off"):
        return pairs, errors
    for item in text.replace(";", ",").split(","):
        if not item.strip():
            continue
        parts = item.split(":")
        try:
            frac, thr = float(parts[0]), float(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            errors.append(f"refinement threshold '{item.strip()}' is not 'fraction:threshold'")
            continue
        if not (0.0 <= frac <= 1.0 and 0.0 <= thr <= 1.0):
            errors.append(f"refinement threshold '{item.strip()}': both numbers must be in 0-1")
            continue
        pairs.append((frac, thr))
    return pairs, errors


def _coerce_bool(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true", None
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value), None
    return spec.default, f"{spec.label}: expected true or false, got {value!r}"


def _coerce_number(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    name = spec.label
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        return spec.default, f"{name}: expected a number, got {value!r}"
    if math.isnan(number) or math.isinf(number):
        return spec.default, f"{name}: {value!r} is not a finite number"
    if spec.kind is int:
        if number != int(number):
            return spec.default, f"{name}: expected a whole number, got {value!r}"
        number = int(number)
    if spec.minimum is not None and number < spec.minimum:
        return spec.default, f"{name}: {value!r} is below the minimum {spec.minimum:g}"
    if spec.maximum is not None and number > spec.maximum:
        return spec.default, f"{name}: {value!r} is above the maximum {spec.maximum:g}"
    return number, None


def _coerce(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """Value of the spec's type, or the default and an error naming the field and the problem."""
    if value is None:
        return spec.default, None
    if spec.kind is bool:
        return _coerce_bool(spec, value)
    if spec.kind is str:
        if not isinstance(value, str):
            return spec.default, f"{spec.label}: expected text"
        if spec.choices and value.strip().lower() not in spec.choices:
            return spec.default, f"{spec.label}: '{value}' is not one of {', '.join(spec.choices)}"
        return (value.strip().lower() if spec.choices else value), None
    return _coerce_number(spec, value)


def parse_named(values: Mapping[str, Any], base: AEParams | None = None) -> ParseResult:
    """Parse a dict of named values (API objects, X/Y/Z overrides); unknown names are errors."""
    current = {f.name: getattr(base or AEParams(), f.name) for f in fields(AEParams)}
    errors = [f"unknown parameter '{k}' (known: {', '.join(FIELD_NAMES)})" for k in values if k not in SPECS]
    for name, value in values.items():
        if name in SPECS:
            current[name], err = _coerce(SPECS[name], value)
            if err:
                errors.append(err)
    errors.extend(parse_thresholds(current["thresholds"])[1])
    return ParseResult(AEParams(**current), errors)


def parse_positional(values: Sequence[Any]) -> ParseResult:
    """Parse UI-ordered values; a single mapping (API named form) is accepted too."""
    if len(values) >= 1 and isinstance(values[0], Mapping):
        return parse_named(values[0])
    return parse_named(dict(zip(FIELD_NAMES, values, strict=False)))


def to_infotext(params: AEParams) -> dict[str, str]:
    """Infotext entries: the subjects whenever given, other values only where they differ from the default."""
    out: dict[str, str] = {}
    defaults = AEParams()
    for spec in FIELDS:
        if spec.infotext is None:
            continue
        value = getattr(params, spec.name)
        if (spec.name == "subjects" and value.strip()) or value != getattr(defaults, spec.name):
            out[spec.infotext] = _format(value)
    return out


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and not value.strip():
        return "none"  # the WebUI's infotext parser fails on an empty value (parse_generation_parameters)
    return str(value)


def infotext_enabled(info: Mapping[str, Any]) -> bool:
    """Whether a parsed infotext was made with A&E on (ENABLED_KEYS)."""
    return any(key in info for key in ENABLED_KEYS)


def from_infotext(info: Mapping[str, Any]) -> ParseResult:
    """Params from a parsed infotext dict (keys absent -> defaults); enabled when it has an ENABLED_KEYS key."""
    named: dict[str, Any] = {s.name: info[s.infotext] for s in FIELDS if s.infotext and s.infotext in info}
    named["enabled"] = infotext_enabled(info)
    return parse_named(named)
