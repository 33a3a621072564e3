"""The paper's objective (Attend-and-Excite): each subject's smoothed max attention must be high.

Loss: max over subjects of max(0, 1 - score) (ae_lib.scores, exactly as the reference). Refinement at the
schedule's threshold steps until every score reaches the threshold (loss <= 1 - threshold) or the cap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ae_lib.objectives.base import ImageTarget, Objective
from ae_lib.schedule import StepPlan
from ae_lib.scores import image_loss, subject_maps, subject_scores


class Excite(Objective):
    name = "excite"
    measure = "max attention"
    reports_thresholds = True

    def image_loss(
        self, image: int, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        scores = subject_scores(attention, target.text_columns, target.subjects, grid, p.smoothing, p.sigma)
        return image_loss(scores), scores

    def refine_limit(self, plan: StepPlan) -> int:
        return plan.max_refine if plan.threshold is not None else 0

    def goal_met(self, loss: float, measures: Sequence[float], plan: StepPlan) -> bool:
        return not loss > max(0.0, 1.0 - float(plan.threshold or 0.0))

    def below(self, measures: Sequence[float], plan: StepPlan) -> list[bool] | None:
        if plan.threshold is None:
            return None
        return [not v >= plan.threshold for v in measures]

    def maps(self, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]) -> torch.Tensor:
        return subject_maps(attention, target.text_columns, target.subjects, grid)
