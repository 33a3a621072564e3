"""What an objective is: the loss A&E's steps minimise, what it reports, and when its refinement stops.

The engine (ae_lib.engine) runs the UNet pass, takes the gradient and moves the latent; an objective only turns
one image's captured attention into a loss and a measure per subject (or group). Nothing outside an objective
knows a formula. One objective instance serves one sampling run, so it may keep state across steps (e.g. the
previous step's maps, `step_done`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ae_lib.params import AEParams
from ae_lib.schedule import StepPlan


@dataclass(frozen=True)
class ImageTarget:
    """One image's subjects (columns), the columns that enter the re-softmax, and its groups of columns
    (attributes, then their subject; objectives that bind words use them). `prompt_columns`: every column of a
    prompt word (no start, end or padding), for objectives that compare a group with the rest of the prompt.
    `group_pieces`: per group, per word, every column of that word (a split word's pieces; empty: each column alone)."""

    subjects: tuple[int, ...]
    text_columns: tuple[int, ...]
    labels: tuple[str, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    group_labels: tuple[str, ...] = ()
    prompt_columns: tuple[int, ...] = ()
    group_pieces: tuple[tuple[tuple[int, ...], ...], ...] = ()


class Objective:
    """The interface; the paper's objective (ae_lib.objectives.excite) is the default."""

    name = "?"
    measure = "?"  # what the per-subject numbers of the report are
    significant_digits: int | None = None  # the report's precision: None = 2 decimals (the paper's scores)
    keeps_state = False  # True: the engine hands each step's final maps to `step_done`
    reports_thresholds = False  # True: the window report says what each refinement threshold did
    uses_subjects = True  # False: the subject spec is ignored, the subjects are the group tokens
    takes_groups = False  # the user may name groups (ae_lib.targets)
    needs_groups = False  # ... and must
    needs_pairs = False  # ... each an attribute with its subject (two words or more)

    def __init__(self, params: AEParams) -> None:
        self.params = params

    @classmethod
    def subjects_of(cls, groups: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        """The subjects when the user named only groups: every group column, each once, in order."""
        return tuple(dict.fromkeys(c for group in groups for c in group))

    def attention_res(self, params: AEParams) -> int:
        """The attention resolution (grid height) the loss reads; 0: the latent's / 4 (ae_lib.capture)."""
        return params.attention_res

    def finer_grids(
        self, latent_hw: tuple[int, int], grid: tuple[int, int], targets: Sequence[ImageTarget | None]
    ) -> tuple[tuple[int, int], ...]:
        """Further grids the loss reads besides `grid` (the same pass keeps each); non-empty: `image_loss` gets
        `finer=`, per grid that ran, (its sum over heads and layers for the image, the number of those heads)."""
        return ()

    def begin_step(self, plan: StepPlan, total_steps: int) -> None:
        """Before an altered step's first pass (for a loss whose weights follow the schedule)."""

    def image_loss(
        self, image: int, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(differentiable scalar loss, (N,) measure per subject/group) from one image's (queries, keys) maps."""
        raise NotImplementedError

    def step_size(self, plan: StepPlan) -> float:
        """The step size at this step (default: the schedule's, the paper's decaying alpha_i)."""
        return plan.step_size

    def refine_limit(self, plan: StepPlan) -> int:
        """Refinement iterations allowed at this step (0: no refinement here)."""
        return 0

    def goal_met(self, loss: float, measures: Sequence[float], plan: StepPlan) -> bool:
        """Whether an image's refinement may stop before its limit (False: a fixed number of iterations)."""
        return False

    def below(self, measures: Sequence[float], plan: StepPlan) -> list[bool] | None:
        """Per subject/group, whether it is below this refinement step's goal; None: no per-subject goal."""
        return None

    def maps(
        self, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> torch.Tensor:
        """(N, h, w) maps the report's grid shows, one per label."""
        raise NotImplementedError

    def step_done(self, index: int, attention: Mapping[int, torch.Tensor]) -> None:
        """After an altered step: each image's final (queries, keys) maps, detached (only if keeps_state)."""
