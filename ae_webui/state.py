"""Per-generation state kept on `p` (reachable from every hook), and user-facing messages.

Messages go to the console once each and into the image's info ("AE error"); scores go into the info
("AE scores") of the image they belong to, for an objective other than the paper's after the name of what they
measure ("AE measure", its `measure`: the paper's scores stay as they were, without it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ae_lib.objectives import DEFAULT, OBJECTIVES, ImageTarget
from ae_lib.params import AEParams
from ae_lib.report import format_scores
from ae_lib.targets import build_target
from ae_lib.tokens import TokenColumn, TokenRule
from ae_lib.window import ImageWindow

LOG = logging.getLogger("attend_and_excite")
if not LOG.handlers:  # the WebUI does not configure logging for extensions; make our lines visible
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[Attend and Excite] %(message)s"))
    LOG.addHandler(_handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False

ATTR = "_attend_and_excite"
INFO_KEYS = ("AE measure", "AE scores", "AE error")


@dataclass
class ImageReport(ImageWindow):
    """One image's window record (ae_lib.window: scores, first/last maps) and why it ran without A&E, if so."""

    problem: str | None = None


@dataclass
class GenerationState:
    """Lives for one process_images call (one per X/Y/Z cell)."""

    params: AEParams
    messages: list[str] = field(default_factory=list)  # generation-wide problems, shown once
    images: dict[int, ImageReport] = field(default_factory=dict)  # by position in the current batch
    session: Any = None  # the installed Session, if any
    map_grids: list[Any] = field(default_factory=list)  # rendered attention-map grids, for the gallery
    written: dict[str, dict[int, str | None]] = field(default_factory=dict)  # infotext key -> image index -> value
    plain_infotext: bool = False  # the host's create_infotext does not call callables: values per image, plain

    def warn(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)
            LOG.warning(message)

    def image(self, position: int) -> ImageReport:
        return self.images.setdefault(position, ImageReport())

    def target(
        self, position: int, columns: Sequence[TokenColumn], rule: TokenRule, problem: str | None = None
    ) -> ImageTarget | None:
        """Image `position`'s target from this generation's subjects and groups in its prompt's columns, or None
        with the reason (`problem`, or the target's own) in its report."""
        p = self.params
        found = None if problem else build_target(columns, p.subjects, p.groups, rule, p.objective)
        report = self.image(position)
        if found is None or not found.ok:
            report.problem = f"image {position + 1} ran without A&E: {problem or found.message()}"
            LOG.warning(report.problem)
            return None
        report.labels = found.target.labels
        return found.target

    def new_batch(self) -> None:
        self.images = {}

    def scores_text(self, position: int) -> str | None:
        report = self.images.get(position)
        if report is None or not report.scores:
            return None
        kind = OBJECTIVES.get(self.params.objective)
        return format_scores(report.labels, report.scores, significant=kind.significant_digits if kind else None)

    def measure_text(self, position: int) -> str | None:
        """What the image's scores measure, for an objective other than the paper's (None: the paper's, or none)."""
        return measure_name(self.params.objective) if self.scores_text(position) is not None else None

    def texts(self) -> tuple[tuple[str, Callable[[int], str | None]], ...]:
        """(infotext key, this image's value) in INFO_KEYS order."""
        return (("AE measure", self.measure_text), ("AE scores", self.scores_text), ("AE error", self.error_text))

    def error_text(self, position: int) -> str | None:
        parts = list(self.messages)
        report = self.images.get(position)
        if report is not None and report.problem:
            parts.append(report.problem)
        return "; ".join(parts) or None


def measure_name(objective: str) -> str | None:
    """The objective's measure (ae_lib.objectives), None for the default objective (its scores need no name)."""
    kind = OBJECTIVES.get(objective)
    return None if kind is None or objective == DEFAULT else kind.measure


def get_state(p: Any) -> GenerationState | None:
    return getattr(p, ATTR, None)


def set_state(p: Any, state: GenerationState | None) -> None:
    setattr(p, ATTR, state)


def install_infotext(p: Any, state: GenerationState, callables: bool = True) -> None:
    """Callables, so each image gets its own values (create_infotext passes `index`, the image's index in the
    generation; its position in the current batch is index % batch_size). Each value written is remembered.

    A host whose create_infotext does not call them (SD.Next) would print the function: there the values are
    written as plain strings by write_image_infotext, before each image's infotext."""
    if not callables:
        state.plain_infotext = True
        return

    def per_image(key: str, text: Callable[[int], str | None]) -> Callable[..., str | None]:
        def value(index: int = 0, **_: Any) -> str | None:
            out = text(index % max(int(getattr(p, "batch_size", 1)), 1))
            state.written.setdefault(key, {})[index] = out
            return out

        return value

    for key, text in state.texts():
        p.extra_generation_params[key] = per_image(key, text)


def write_image_infotext(p: Any) -> None:
    """postprocess_image (every host calls it for each image before that image's infotext): in plain mode, this
    image's scores and errors as plain strings; a value the image does not have is removed."""
    state = get_state(p)
    if state is None or not state.plain_infotext:
        return
    position = int(getattr(p, "batch_index", 0) or 0)
    for key, text in state.texts():
        value = text(position)
        if value is None:
            p.extra_generation_params.pop(key, None)
        else:
            p.extra_generation_params[key] = value


def freeze_infotext(p: Any, state: GenerationState) -> None:
    """postprocess(): the images' infotexts are written; replace our callables by the first image's values.

    Processed.js() serialises extra_generation_params; A1111 and Forge pass `default=` to json.dumps, Forge
    Classic does not and fails on a function (HTTP 500 for every request, and in the UI). Plain strings work
    in every host; a value no image got is dropped (an empty infotext value breaks paste-back).
    """
    for key in INFO_KEYS:
        if callable(p.extra_generation_params.get(key)):
            first = state.written.get(key, {}).get(0)
            if first is None:
                p.extra_generation_params.pop(key, None)
            else:
                p.extra_generation_params[key] = first


def clear_infotext(p: Any, keys: tuple[str, ...]) -> None:
    """X/Y/Z cells share extra_generation_params (shallow copy of p): drop our keys before each run."""
    for key in keys:
        p.extra_generation_params.pop(key, None)
