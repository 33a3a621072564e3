"""Contrast (CONFORM, Meral et al., CVPR 2024; official code gemlab-vt/CONFORM, pipeline_conform.py, MIT).

Each token of a group (an attribute with its subject, e.g. [red, car]) should attend where the rest of its group
does and away from the other groups. Every group token's map (the aggregated attention of its column, smoothed
with the paper's 3x3 kernel, flattened) is an embedding; the previous step's map of the same token is a second
view of it. The loss is NT-Xent (cosine similarity, temperature 0.5) over these embeddings with the group as the
class, as pytorch_metric_learning's NTXentLoss computes it (mean over positive pairs; each anchor's negatives are
the other groups' embeddings).

As the official code (with the authors' notebook settings, softmax_normalize=False): the maps are the attention
probabilities themselves (no x100 re-softmax over text columns); refinement runs a fixed number of iterations
(no thresholds) at the refinement steps; step sizes and window as A&E.

Reported per token: its separation, the mean cosine similarity to its own group's other tokens (1 when it is
alone) minus the mean to the other groups' tokens (0 when there are none); it rises as the objective works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from ae_lib.objectives.base import ImageTarget, Objective
from ae_lib.params import AEParams
from ae_lib.schedule import StepPlan
from ae_lib.scores import smooth

TEMPERATURE = 0.5


def group_tokens(target: ImageTarget) -> tuple[list[int], list[int]]:
    """(columns, class of each) in the official order: groups in order, each token once (its last group)."""
    classes: dict[int, int] = {}
    for c, group in enumerate(target.groups):
        for column in group:
            classes[column] = c
    return list(classes), list(classes.values())


def nt_xent(embeddings: torch.Tensor, classes: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """NT-Xent over (N, D) embeddings with integer classes: pytorch_metric_learning's NTXentLoss arithmetic."""
    unit = F.normalize(embeddings, p=2, dim=1)
    sim = unit @ unit.T
    same = classes[:, None] == classes[None, :]
    positive = same & ~torch.eye(len(classes), dtype=torch.bool, device=same.device)
    negative = ~same
    if not positive.any() or not negative.any():
        return (embeddings * 0).sum()  # no pair to contrast: no loss (and no update)
    anchor, other = torch.where(positive)
    pos = sim[anchor, other] / temperature
    neg = torch.where(negative[anchor], sim[anchor] / temperature, torch.finfo(sim.dtype).min)
    top = torch.maximum(pos, neg.max(dim=1).values).detach()
    numerator = torch.exp(pos - top)
    denominator = torch.exp(neg - top[:, None]).sum(dim=1) + numerator
    return -torch.log(numerator / denominator + torch.finfo(sim.dtype).tiny).mean()


class Contrast(Objective):
    name = "contrast"
    measure = "separation"
    significant_digits = 3  # its measure can be far below 0.01 (e.g. on weak maps)
    keeps_state = True
    uses_subjects = False
    takes_groups = needs_groups = True

    def __init__(self, params: AEParams) -> None:
        super().__init__(params)
        self.previous: dict[int, torch.Tensor] = {}  # image -> its (queries, keys) maps at the last altered step

    def embeddings(self, attention: torch.Tensor, columns: Sequence[int], grid: tuple[int, int]) -> torch.Tensor:
        maps = attention[:, list(columns)].T.reshape(len(columns), *grid)
        if self.params.smoothing:
            maps = smooth(maps, self.params.sigma)
        return maps.flatten(1)

    def image_loss(
        self, image: int, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        columns, classes = group_tokens(target)
        current = self.embeddings(attention, columns, grid)
        views, labels = current, classes
        previous = self.previous.get(image)
        if previous is not None:  # official order: each token's map, then its previous step's map
            before = self.embeddings(previous.to(attention), columns, grid)
            views = torch.stack([current, before], dim=1).flatten(0, 1)
            labels = [c for c in classes for _ in range(2)]
        loss = nt_xent(views, torch.tensor(labels, device=attention.device))
        return loss, separation(current.detach(), classes)

    def refine_limit(self, plan: StepPlan) -> int:
        return plan.max_refine if plan.threshold is not None else 0

    def maps(self, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]) -> torch.Tensor:
        columns, _ = group_tokens(target)
        return attention[:, columns].T.reshape(len(columns), *grid)

    def step_done(self, index: int, attention: Mapping[int, torch.Tensor]) -> None:
        self.previous.update(attention)


def separation(embeddings: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Per token: mean cosine similarity to its group's other tokens (1 alone) minus to the other groups' (0)."""
    unit = F.normalize(embeddings, p=2, dim=1)
    sim = unit @ unit.T
    labels = torch.tensor(list(classes), device=sim.device)
    same = labels[:, None] == labels[None, :]
    own = same & ~torch.eye(len(labels), dtype=torch.bool, device=sim.device)
    within = torch.where(own.any(1), (sim * own).sum(1) / own.sum(1).clamp(min=1), torch.ones_like(sim[:, 0]))
    between = (sim * ~same).sum(1) / (~same).sum(1).clamp(min=1)
    return within - between
