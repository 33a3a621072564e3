"""One image's report line for any objective (the ComfyUI node's text), and how its maps are shown.

The paper's objective (the default) keeps the text it always had: "image 1: cat 0.91, frog 0.84; thresholds: ...".
Any other objective says its name and what its numbers are (its own measure, one per label of its maps) first:
"image 1: contrast, separation: red 0.42, car 0.40, blue 0.38, bird 0.41", then its thresholds where it has some.
Nothing here knows an objective by name: each says its `measure` and whether it `reports_thresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ae_lib.objectives import DEFAULT, OBJECTIVES
from ae_lib.report import format_scores
from ae_lib.schedule import Schedule
from ae_lib.window import ImageWindow, thresholds_line


def measures_text(labels: Sequence[str], measures: Sequence[float], significant: int | None = None) -> str:
    """ "cat 0.91, frog 0.84"; numbered items where an objective gives another count than labels (never raises:
    this text is written from inside a sampler run)."""
    if len(labels) != len(measures):
        labels = [f"#{i + 1}" for i in range(len(measures))]
    return format_scores(labels, measures, significant=significant)


def image_line(row: int, image: ImageWindow, objective: str | None, schedule: Schedule | None) -> str:
    """The line of image `row` (0-based; shown from 1) of one run."""
    name = objective or DEFAULT
    kind = OBJECTIVES.get(name)
    head = f"image {row + 1}: "
    if name != DEFAULT:
        head += f"{name}, {kind.measure if kind is not None else 'measure'}: "
    line = head + measures_text(image.labels, image.scores, kind.significant_digits if kind is not None else None)
    if schedule is not None and (kind is None or kind.reports_thresholds):
        line += f"; {thresholds_line(image, schedule)}"
    return line


def absolute_maps(objective: str | None) -> bool:
    """Whether the maps grid shows the maps on the absolute 0-1 scale: the paper's maps (x100 re-softmax over
    the text columns) are, and its score is their peak, so a dark map is a neglected subject. Another objective's
    maps (e.g. contrast's raw attention probabilities, far below 1) are each stretched to its own peak: there the
    grid shows where each word attends, and its number is the objective's measure."""
    return (objective or DEFAULT) == DEFAULT
