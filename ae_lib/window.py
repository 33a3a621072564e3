"""Each image's record over a run's A&E window: its latest scores, its maps at the first altered step and at the
latest one (what the attention-map grids show) and what refinement did at each threshold step, plus the console
lines at the end of the window.

Host-free; the step driver (ae_lib.driver) keeps one `ImageWindow` per image of the batch and feeds it every
step's result. What the maps are and which subjects met the goal is the objective's (ae_lib.objectives).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ae_lib.engine import StepResult
from ae_lib.objectives import ImageTarget, Objective, make
from ae_lib.params import AEParams
from ae_lib.report import ThresholdOutcome, format_scores, thresholds_report
from ae_lib.schedule import Schedule, StepPlan


@dataclass
class ImageWindow:
    labels: tuple[str, ...] = ()
    scores: list[float] = field(default_factory=list)
    first_scores: list[float] = field(default_factory=list)
    first_maps: torch.Tensor | None = None  # (subjects, h, w) at the first altered step
    last_maps: torch.Tensor | None = None  # at the latest altered step
    thresholds: dict[int, ThresholdOutcome] = field(default_factory=dict)  # by threshold step


def record_step(
    images: dict[int, ImageWindow],
    result: StepResult,
    targets: Sequence[ImageTarget | None],
    grid: tuple[int, int],
    objective: Objective | None = None,
    plan: StepPlan | None = None,
) -> None:
    """Scores (and maps, where the engine kept them) of one step into each image's window record; with the step's
    plan, what refinement did there (at a threshold step, for an objective with thresholds)."""
    objective = objective or make(None, AEParams())
    for row, scores in result.scores.items():
        target = targets[row]
        if target is None:
            continue
        image = images.setdefault(row, ImageWindow(tuple(target.labels)))
        image.scores = list(scores)
        flags = objective.below(scores, plan) if plan is not None and row in result.threshold_met else None
        if flags is not None:
            below = tuple(lb for lb, low in zip(image.labels, flags, strict=False) if low)
            met = result.threshold_met[row]
            image.thresholds[plan.index] = ThresholdOutcome(met, result.refine_iterations.get(row, 0),
                                                            () if met else below)
        attention = result.maps.get(row)
        if attention is None:
            continue
        maps = objective.maps(attention, target, grid).cpu()
        image.last_maps = maps
        if image.first_maps is None:
            image.first_maps, image.first_scores = maps, list(scores)


def thresholds_line(image: ImageWindow, schedule: Schedule) -> str:
    """Which thresholds applied to this image in this run and whether each was met (ae_lib.report)."""
    return thresholds_report(schedule.thresholds, image.thresholds, schedule.past_window, schedule.alter_until,
                             schedule.max_refine)


def end_of_window_lines(
    images: Mapping[int, ImageWindow], schedule: Schedule, objective: Objective | None = None
) -> list[str]:
    """One console line per image (numbered from 1): its scores, and for an objective with thresholds (the
    paper's) each threshold: met, not met (after how many iterations, which subjects below), not run, or past the
    window."""
    objective = objective or make(None, AEParams())
    return [
        f"A&E image {row + 1}: {format_scores(image.labels, image.scores, significant=objective.significant_digits)}"
        + (f"; {thresholds_line(image, schedule)}" if objective.reports_thresholds else "")
        for row, image in sorted(images.items())
        if image.scores
    ]
