"""Divide & Bind (Li et al., BMVC 2023; official code boschresearch/Divide-and-Bind,
divide_and_bind/pipeline_divide_and_bind_latest.py, loss mode "tv_bind"; AGPL: the formulas only, our code).

Divide (attendance): each subject's map should spread over several places, so its total variation is maximised
(A&E maximises one peak). Bind: each attribute's map should cover its subject's, so the Jensen-Shannon divergence
between them is minimised. With S the subject's map on the loss grid (mean over every head of every layer at it,
x100 softmax over the text columns, the 3x3 smoothing) and A an attribute's map from the FINER layers (every layer
of every grid finer than the loss grid, each nearest-downsampled to it, mean over all their heads, then the same
x100 softmax and smoothing):

    TV(S)   = mean_{i, j<w-1} |S[i,j] - S[i,j+1]| + mean_{i>=1, j} |S[h-1,j] - S[i,j]|
    p       = softmax(flatten(S)),  q = softmax(flatten(A / max A * max S))        (softmax over the pixels)
    t       = c * max(p),  c = 0.3 if TV(S) < 0.1 else 0.2
    p', q'  = relu(p - t) + 1e-5,  relu(q - t) + 1e-5                         (t from p for both, not renormalised)
    JSD     = 1/2 [sum p' (log p' - log m) + sum q' (log q' - log m)],  m = (p' + q') / 2
    loss    = max over subjects of ( -TV(S) + w_i * sum over the subject's attributes of JSD )

with the binding weight w_i = 1, 5, 10 from step 0, round(0.2 N), round(0.4 N) (the code's 1/5/10 at steps 0/10/20
of 50). The measure (reported per subject, and the refinement goal) is TV(S); refinement at a threshold step runs
while the lowest TV is below the threshold. Step sizes and window as A&E (the code's scale factor 20 over
sqrt(linspace(1, 0.5, N)), steps i < 25 of 50).

Thresholds and refinement limit: the code's own, {0: 0.05, 10: 0.2, 20: 0.3} of 50 (TV units) and at most 100
iterations at step 0, 50 at the others. They apply while the thresholds and max-refinement fields hold A&E's
defaults (same positions, so each A&E default threshold stands for the code's value at its step); a user's own
thresholds are read as TV values, a user's own max refinement is the limit at every threshold step.

Where the code's details go beyond or against the paper's description (a total-variation attendance loss on each
object's map, a Jensen-Shannon binding loss between attribute and object maps), we follow the code: the vertical
TV term compares the LAST row with every row (a broadcast in the code), not neighbouring rows; the attribute map
is rescaled to the subject's peak, both are softmaxed over the pixels and cut at a fraction of the subject's peak
(+1e-5, not renormalised) before the JSD; the binding weight grows 1/5/10 over the steps; the refinement limits
are 100/50 (the repository's earlier pipeline: 20/20); the attribute maps are from the 64 and 32 grids at 512 px
(here: every grid finer than the loss grid); the computed TV of the attribute map is unused.

Groups: the last word of a group is its subject, the words before it its attributes (the code binds one attribute
per subject; with several, their terms add up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from ae_lib.capture import grid_candidates
from ae_lib.objectives.base import ImageTarget, Objective
from ae_lib.params import DEFAULT_THRESHOLDS, SPECS, AEParams, parse_thresholds
from ae_lib.schedule import StepPlan, round_half_up
from ae_lib.scores import smooth, subject_maps

Grid = tuple[int, int]
THRESHOLDS = "0:0.05, 0.2:0.2, 0.4:0.3"  # the code's {0: 0.05, 10: 0.2, 20: 0.3} of 50
FIRST_LIMIT, LIMIT = 100, 50  # the code's refinement limits at step 0 and at the other threshold steps
BIND_WEIGHTS = ((0.0, 1.0), (0.2, 5.0), (0.4, 10.0))  # (from this fraction of the steps, weight)
FLOOR = 1e-5


def total_variation(maps: torch.Tensor) -> torch.Tensor:
    """(S, h, w) -> (S,): the code's TV, horizontal neighbours plus the last row against every other row."""
    across = (maps[:, :, :-1] - maps[:, :, 1:]).abs().flatten(1).mean(1)
    down = (maps[:, -1:, :] - maps[:, 1:, :]).abs().flatten(1).mean(1)
    return across + down


def jsd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The code's Jensen-Shannon divergence of two positive vectors (not renormalised)."""
    log_m = (0.5 * (p + q)).log()
    return 0.5 * ((p * (p.log() - log_m)).sum() + (q * (q.log() - log_m)).sum())


def bind_term(subject: torch.Tensor, attribute: torch.Tensor, tv: torch.Tensor) -> torch.Tensor:
    """JSD between a subject's (h, w) map and its attribute's, as the code prepares them."""
    p = subject.flatten().softmax(0)
    q = (attribute / attribute.max() * subject.max()).flatten().softmax(0)
    cut = (0.3 if bool(tv < 0.1) else 0.2) * p.max()
    return jsd(F.relu(p - cut) + FLOOR, F.relu(q - cut) + FLOOR)


def downsampled_mean(finer: Mapping[Grid, tuple[torch.Tensor, int]], grid: Grid) -> torch.Tensor:
    """(queries, keys) on `grid`: every finer grid's sum over heads nearest-downsampled, over all their heads."""
    total, heads = None, 0
    for (h, w), (summed, count) in finer.items():
        maps = summed.T.reshape(1, summed.shape[1], h, w)
        picked = F.interpolate(maps, size=grid, mode="nearest")[0].flatten(1).T
        total = picked if total is None else total + picked
        heads += count
    if total is None:
        msg = ("Divide & Bind binds attributes with the attention of the layers finer than the loss grid, and no "
               "such layer ran in this pass")
        raise RuntimeError(msg)
    return total / heads


def attributes_of(target: ImageTarget) -> dict[int, tuple[int, ...]]:
    """Subject column -> the attribute columns of its group (the words before it)."""
    return {group[-1]: tuple(group[:-1]) for group in target.groups if len(group) > 1}


class Divide(Objective):
    name = "divide"
    measure = "total variation"
    significant_digits = 3  # its measure can be far below 0.01 (e.g. on weak maps)
    takes_groups = needs_pairs = True

    def __init__(self, params: AEParams) -> None:
        super().__init__(params)
        self.weight = BIND_WEIGHTS[0][1]
        own = parse_thresholds(THRESHOLDS)[0]
        self.defaults = dict(zip([t for _, t in parse_thresholds(DEFAULT_THRESHOLDS)[0]], [t for _, t in own],
                                 strict=True))

    @classmethod
    def subjects_of(cls, groups: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        """Each group's subject (its last word)."""
        return tuple(dict.fromkeys(group[-1] for group in groups))

    def finer_grids(
        self, latent_hw: tuple[int, int], grid: Grid, targets: Sequence[ImageTarget | None]
    ) -> tuple[Grid, ...]:
        if not any(t is not None and attributes_of(t) for t in targets):
            return ()  # nothing to bind: the pass may stop after the loss grid's layers
        sizes = grid_candidates(*latent_hw)
        return tuple(sizes[: sizes.index(grid)]) if grid in sizes else ()

    def begin_step(self, plan: StepPlan, total_steps: int) -> None:
        self.weight = next(w for frac, w in reversed(BIND_WEIGHTS) if plan.index >= round_half_up(frac * total_steps))

    def image_loss(
        self,
        image: int,
        attention: torch.Tensor,
        target: ImageTarget,
        grid: Grid,
        finer: Mapping[Grid, tuple[torch.Tensor, int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        subjects = self._smoothed(attention, target, target.subjects, grid)
        tv = total_variation(subjects)
        bound = attributes_of(target)
        terms = []
        fine = None
        for k, column in enumerate(target.subjects):
            term = -tv[k]
            for attribute in bound.get(column, ()):
                if fine is None:
                    fine = downsampled_mean(finer or {}, grid)
                colour = self._smoothed(fine, target, (attribute,), grid)[0]
                term = term + self.weight * bind_term(subjects[k], colour, tv[k])
            terms.append(term)
        return torch.stack(terms).max(), tv.detach()

    def _smoothed(
        self, attention: torch.Tensor, target: ImageTarget, columns: Sequence[int], grid: Grid
    ) -> torch.Tensor:
        maps = subject_maps(attention, target.text_columns, columns, grid)
        return smooth(maps, self.params.sigma) if self.params.smoothing else maps

    def threshold(self, plan: StepPlan) -> float | None:
        """The TV this threshold step must reach: the code's at A&E's default thresholds, else the user's."""
        if plan.threshold is None:
            return None
        if parse_thresholds(self.params.thresholds)[0] == parse_thresholds(DEFAULT_THRESHOLDS)[0]:
            return self.defaults.get(plan.threshold, plan.threshold)
        return plan.threshold

    def refine_limit(self, plan: StepPlan) -> int:
        if self.threshold(plan) is None:
            return 0
        if plan.max_refine == SPECS["max_refine"].default:
            return FIRST_LIMIT if plan.index == 0 else LIMIT
        return plan.max_refine

    def goal_met(self, loss: float, measures: Sequence[float], plan: StepPlan) -> bool:
        lowest = torch.tensor([float(v) for v in measures], dtype=torch.float64).min()  # NaN wins, as the code's
        return not bool(lowest < (self.threshold(plan) or 0.0))

    def below(self, measures: Sequence[float], plan: StepPlan) -> list[bool] | None:
        goal = self.threshold(plan)
        return None if goal is None else [not v >= goal for v in measures]

    def maps(self, attention: torch.Tensor, target: ImageTarget, grid: Grid) -> torch.Tensor:
        return subject_maps(attention, target.text_columns, target.subjects, grid)
