"""Which sampler steps are altered, where refinement runs, and the step size of each step.

The reference, at N = 50: steps i < 25 altered; refinement at 0/10/20 with thresholds 0.05/0.5/0.8;
alpha_i = 20 * sqrt(linspace(1.0, 0.5, 50)[i]). For other N every position is a fraction of the schedule,
rounded half up (round(0.5 * N) etc.). Indices are positions in the FULL noise schedule of N steps: an
img2img or hires run that starts at index s applies the part of the window it overlaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ae_lib.params import AEParams

SCALE_RANGE = (1.0, 0.5)


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def linspace(start: float, stop: float, num: int) -> list[float]:
    """numpy.linspace in float64, same arithmetic (step * i + start, last = stop)."""
    if num == 1:
        return [start]
    step = (stop - start) / (num - 1)
    values = [i * step + start for i in range(num)]
    values[-1] = stop
    return values


@dataclass(frozen=True)
class StepPlan:
    index: int  # position in the full schedule
    step_size: float
    threshold: float | None  # refinement threshold at this step, if any
    max_refine: int


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    alter_until: int
    thresholds: dict[int, float]
    step_sizes: tuple[float, ...]
    max_refine: int
    past_window: dict[int, float] = field(default_factory=dict)  # thresholds placed at or after alter_until

    @classmethod
    def from_params(cls, params: AEParams, total_steps: int) -> Schedule:
        n = max(int(total_steps), 1)
        alter_until = min(round_half_up(params.steps_altered * n), n)
        thresholds: dict[int, float] = {}
        past: dict[int, float] = {}
        for frac, thr in params.threshold_pairs():
            i = round_half_up(frac * n)
            placed = thresholds if i < alter_until else past  # refinement only inside the altered window
            placed[i] = max(thr, placed.get(i, 0.0))  # collisions (tiny N): the stricter wins
        sizes = tuple(params.step_size * math.sqrt(r) for r in linspace(*SCALE_RANGE, n))
        return cls(n, alter_until, thresholds, sizes, params.max_refine, past)

    def plan(self, index: int) -> StepPlan | None:
        """The plan for full-schedule step `index`, or None when the step is not altered."""
        if index < 0 or index >= self.alter_until:
            return None
        return StepPlan(index, self.step_sizes[index], self.thresholds.get(index), self.max_refine)

    def altered_steps(self, start: int = 0) -> list[int]:
        return [i for i in range(max(start, 0), self.alter_until)]
