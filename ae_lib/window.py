"""Each image's record over a run's A&E window: its latest scores, and its maps at the first altered step and
at the latest one (what the attention-map grids show), plus the console lines at the end of the window.

Host-free; a host glue keeps one `ImageWindow` per image of the batch and feeds it every step's result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ae_lib.engine import ImageTarget, StepResult
from ae_lib.report import window_summary
from ae_lib.schedule import Schedule
from ae_lib.scores import subject_maps


@dataclass
class ImageWindow:
    labels: tuple[str, ...] = ()
    scores: list[float] = field(default_factory=list)
    first_scores: list[float] = field(default_factory=list)
    first_maps: torch.Tensor | None = None  # (subjects, h, w) at the first altered step
    last_maps: torch.Tensor | None = None  # at the latest altered step


def record_step(
    images: dict[int, ImageWindow],
    result: StepResult,
    targets: Sequence[ImageTarget | None],
    grid: tuple[int, int],
) -> None:
    """Scores (and maps, where the engine kept them) of one step into each image's window record."""
    for row, scores in result.scores.items():
        target = targets[row]
        if target is None:
            continue
        image = images.setdefault(row, ImageWindow(tuple(target.labels)))
        image.scores = list(scores)
        attention = result.maps.get(row)
        if attention is None:
            continue
        maps = subject_maps(attention, target.text_columns, target.subjects, grid).cpu()
        image.last_maps = maps
        if image.first_maps is None:
            image.first_maps, image.first_scores = maps, list(scores)


def end_of_window_lines(images: Mapping[int, ImageWindow], schedule: Schedule) -> list[str]:
    """One console line per image (numbered from 1): its scores and the subjects below the last threshold."""
    goal = max(schedule.thresholds.values(), default=0.0)
    return [
        window_summary(row + 1, image.labels, image.scores, [s >= goal for s in image.scores])
        for row, image in sorted(images.items())
        if image.scores
    ]
