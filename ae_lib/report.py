"""Per-subject scores as text: the generation-info value, its parser, and the console summary line.

The scores text is "cat 0.91, frog 0.84": one "label score" item per subject, in subject order. Labels are
single words (ae_lib.tokens splits specs on whitespace and commas), but a label picked by column index can be
punctuation such as ",", so the parser anchors on the number, not on the separators.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ThresholdOutcome", "format_scores", "parse_scores", "thresholds_report", "window_summary"]

DIGITS = 2
_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|nan|inf)"
# A label (anything without whitespace), whitespace, a number, then ", " or the end of the text.
_ITEM = re.compile(rf"\s*(?P<label>\S+?)\s+(?P<score>{_NUMBER})\s*(?:,|$)", re.IGNORECASE)


def _clean_label(label: str) -> str:
    # Whitespace would split a label in two when parsed back; an empty label would vanish.
    text = re.sub(r"\s+", "_", str(label).strip())
    return text or "?"


def _format_number(score: float, digits: int, significant: int | None = None) -> str:
    value = float(score)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:#.{significant}g}" if significant else f"{value:.{digits}f}"
    return text.removeprefix("-") if float(text) == 0 else text  # "-0.00": a measure that can be negative, ~0


def format_scores(
    labels: Sequence[str], scores: Sequence[float], digits: int = DIGITS, significant: int | None = None
) -> str:
    """ "cat 0.91, frog 0.84"; labels and scores are paired in order and must have the same length.

    `significant`: that many significant digits instead of `digits` decimals, for measures far below 1
    (an objective's `significant_digits`)."""
    if len(labels) != len(scores):
        msg = f"{len(labels)} labels but {len(scores)} scores"
        raise ValueError(msg)
    return ", ".join(f"{_clean_label(lb)} {_format_number(s, digits, significant)}"
                     for lb, s in zip(labels, scores, strict=True))


def parse_scores(text: str) -> list[tuple[str, float]]:
    """Inverse of format_scores: [(label, score), ...]; text that is not a scores list gives []."""
    text = (text or "").strip()
    items: list[tuple[str, float]] = []
    pos = 0
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if m is None:
            return []  # anything unparsable means this is not our value: no partial results
        items.append((m.group("label"), float(m.group("score"))))
        pos = m.end()
    return items


def _below(labels: Sequence[str], thresholds_met: bool | Sequence[bool]) -> list[str] | None:
    """Labels below their threshold; None when only an overall flag is known and it is False."""
    if isinstance(thresholds_met, bool):
        return [] if thresholds_met else None
    if len(thresholds_met) != len(labels):
        msg = f"{len(labels)} labels but {len(thresholds_met)} threshold flags"
        raise ValueError(msg)
    return [_clean_label(lb) for lb, met in zip(labels, thresholds_met, strict=True) if not met]


def window_summary(
    image_index: int,
    labels: Sequence[str],
    scores: Sequence[float],
    thresholds_met: bool | Sequence[bool],
) -> str:
    """One console line at the end of an image's A&E window.

    `thresholds_met` is one flag for the image or one per subject, e.g.
    "A&E image 0: cat 0.91, frog 0.42; below threshold: frog".
    """
    line = f"A&E image {image_index}: {format_scores(labels, scores)}"
    below = _below(labels, thresholds_met)
    if below is None:
        return f"{line}; thresholds not met"
    if below:
        return f"{line}; below threshold: {', '.join(below)}"
    return f"{line}; all thresholds met"


@dataclass(frozen=True)
class ThresholdOutcome:
    """What refinement did at one threshold step for one image."""

    met: bool
    iterations: int  # refinement iterations run (0: the threshold was met on arrival)
    below: tuple[str, ...] = ()  # subjects still below the threshold afterwards


def thresholds_report(
    planned: Mapping[int, float],
    outcomes: Mapping[int, ThresholdOutcome],
    past_window: Mapping[int, float],
    window_end: int,
    max_refine: int,
) -> str:
    """Which thresholds applied to an image and whether each was met, e.g. "thresholds: 0.05 at step 0 met;
    0.5 at step 1 not met after 20 iterations (frog below); 0.8 at step 2 not applied (past the window, steps 0-1)".

    `planned`: step -> threshold inside the window; `outcomes`: what refinement did at those steps (a planned step
    without one did not run in this sampling run); `past_window`: thresholds placed at or after `window_end`.
    """
    if not planned and not past_window:
        return "no thresholds"
    if max_refine <= 0 and planned:
        return "thresholds not applied (max refinement iterations is 0)"
    parts = []
    for index, threshold in sorted(planned.items()):
        where = f"{threshold:g} at step {index}"
        outcome = outcomes.get(index)
        if outcome is None:
            parts.append(f"{where} not run")
        elif outcome.met:
            tries = f" after {outcome.iterations} iteration{'s' if outcome.iterations != 1 else ''}"
            parts.append(f"{where} met{tries if outcome.iterations else ''}")
        else:
            below = f" ({', '.join(_clean_label(lb) for lb in outcome.below)} below)" if outcome.below else ""
            parts.append(f"{where} not met after {outcome.iterations} iterations{below}")
    window = f"steps 0-{window_end - 1}" if window_end > 0 else "no steps"
    for index, threshold in sorted(past_window.items()):
        parts.append(f"{threshold:g} at step {index} not applied (past the window, {window})")
    return "thresholds: " + "; ".join(parts)
