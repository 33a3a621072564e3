"""One A&E step on a batch: gradient step, per-image iterative refinement, scores.

The engine works on z, the latent the UNet sees (the reference's z_t). A host in another
parameterisation converts (see `ae_lib.latents`). `run_cond(z_rows, rows)` must run the UNet's
conditional branch for the images `rows` (indices into the batch) on `z_rows`; its result is not used,
only the attention it produces, and the pass is stopped after the last target layer.

Refinement follows the reference's sequence exactly, without its wasted passes: the reference re-runs the
forward at the latent it already evaluated and runs two no-grad passes per iteration; here every UNet pass
is one evaluation whose loss and gradient are used.

Each pass runs with the UNet's weights frozen (only d loss / d z is needed; see ae_lib.memory) and, with
`checkpoint=True`, with its blocks under gradient checkpointing for low-memory setups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace

import torch

from ae_lib.capture import AttentionCapture, Recording, target_grid
from ae_lib.memory import checkpointed_blocks, frozen_parameters, unet_blocks
from ae_lib.objectives import ImageTarget, Objective, make
from ae_lib.params import AEParams
from ae_lib.schedule import Schedule, StepPlan

RunCond = Callable[[torch.Tensor, list[int]], object]
NO_GRAPH = (
    "the A&E pass recorded no gradient: the host ran the UNet without autograd (inference mode or no_grad "
    "that the pass could not leave, or weights that cannot be saved for backward); the latent was not moved"
)
ZERO_GRADIENT = (
    "the gradient of image {image}'s loss ({loss:.3f}) with respect to the latent is exactly zero at a non-zero "
    "step size: the attention A&E reads does not depend on the latent; the latent was not moved"
)


class NoGradientError(RuntimeError):
    """A&E could not act: its pass gave no usable gradient (never a silent no-op)."""


@dataclass
class Evaluation:
    """Loss, gradient w.r.t. z and the objective's measures (`scores`) of some rows, from one pass."""

    rows: list[int]
    losses: list[float]
    grads: torch.Tensor
    scores: list[list[float]]
    maps: torch.Tensor | None = None  # (rows, queries, keys) aggregated attention, detached


@dataclass
class StepResult:
    latent: torch.Tensor  # z after the step
    scores: dict[int, list[float]]  # per image: each subject's score at the last evaluated latent
    losses: dict[int, float]
    refine_iterations: dict[int, int] = field(default_factory=dict)
    threshold_met: dict[int, bool] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)  # images whose update was skipped, and why
    passes: int = 0
    maps: dict[int, torch.Tensor] = field(default_factory=dict)  # per image (queries, keys), if kept


class AttendExcite:
    """Runs A&E steps for one sampling run on one UNet.

    `objective`: the loss and its measures (ae_lib.objectives; default the paper's).
    `checkpoint=True` trades time for memory in the A&E pass: each UNet block keeps only its inputs and is
    recomputed during backward (about one more truncated forward per pass). Off by default.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        params: AEParams,
        schedule: Schedule,
        capture: AttentionCapture | None = None,
        keep_maps: bool = False,
        checkpoint: bool = False,
        objective: Objective | None = None,
    ) -> None:
        self.unet = unet
        self.params = params
        self.objective = objective or make(None, params)
        self.schedule = schedule
        self.capture = capture or AttentionCapture(unet)
        self.keep_maps = keep_maps
        self.checkpoint = checkpoint
        self._blocks = unet_blocks(unet) if checkpoint else []

    def step(
        self,
        index: int,
        z: torch.Tensor,
        run_cond: RunCond,
        targets: Sequence[ImageTarget | None],
        should_stop: Callable[[], bool] | None = None,
        on_refine: Callable[[int, int], None] | None = None,
    ) -> StepResult | None:
        """A&E at full-schedule step `index`; None when the step is not altered or no image has subjects."""
        plan = self.schedule.plan(index)
        rows = [b for b, t in enumerate(targets) if t is not None]
        if plan is None or not rows:
            return None
        plan = replace(plan, step_size=self.objective.step_size(plan))
        latent_hw = (z.shape[-2], z.shape[-1])
        grid = self.grid(latent_hw)
        finer = self.objective.finer_grids(latent_hw, grid, targets)
        self.objective.begin_step(plan, self.schedule.total_steps)
        run = _Run(self, z.detach().clone(), run_cond, targets, grid, plan, finer)
        current = run.evaluate(rows)
        limit = self.objective.refine_limit(plan)
        if limit > 0:
            run.refine(current, limit, should_stop, on_refine)
        for b, (ev, i) in current.items():  # the regular update, from the last evaluated latent
            run.apply(b, ev, i)
            run.result.scores[b], run.result.losses[b] = ev.scores[i], ev.losses[i]
            if self.keep_maps and ev.maps is not None:
                run.result.maps[b] = ev.maps[i]
        if self.objective.keeps_state:
            self.objective.step_done(index, {b: ev.maps[i] for b, (ev, i) in current.items() if ev.maps is not None})
        return run.result

    def grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """The attention grid the objective reads for a latent of this size."""
        return target_grid(latent_hw, self.objective.attention_res(self.params))

    def evaluate(
        self,
        z: torch.Tensor,
        rows: list[int],
        run_cond: RunCond,
        targets: Sequence[ImageTarget | None],
        grid: tuple[int, int],
        finer: Sequence[tuple[int, int]] | None = None,
    ) -> Evaluation:
        """One UNet pass on z[rows] with autograd: per-image losses, their gradient w.r.t. z, scores.
        `finer`: further grids the objective reads, kept from the same pass (None: Objective.finer_grids)."""
        if finer is None:
            finer = self.objective.finer_grids((z.shape[-2], z.shape[-1]), grid, targets)
        leaf = z[rows].detach().clone().requires_grad_(True)
        # Frozen through backward too: checkpointed blocks are recomputed there and must build the same graph.
        with torch.enable_grad(), frozen_parameters(self.unet):
            with self._recording(grid[0] * grid[1], [h * w for h, w in finer]) as rec:
                run_cond(leaf, rows)
            attention = rec.mean()
            if not attention.requires_grad:
                raise NoGradientError(NO_GRAPH)
            kept = {g: rec.also[g[0] * g[1]] for g in finer}
            losses, scores, total = [], [], None
            for i, b in enumerate(rows):
                extra = {"finer": {g: (k.prob_sum[i], k.heads) for g, k in kept.items() if k.prob_sum is not None}}
                loss, s = self.objective.image_loss(b, attention[i], targets[b], grid, **(extra if finer else {}))
                total = loss if total is None else total + loss
                losses.append(float(loss.detach()))
                scores.append([float(v) for v in s.detach()])
            grads = _grad(total, leaf)
        keep = self.keep_maps or self.objective.keeps_state
        return Evaluation(rows, losses, grads, scores, attention.detach() if keep else None)

    @contextmanager
    def _recording(self, queries: int, also: Sequence[int] = ()) -> Iterator[Recording]:
        """The capture's recording, with the UNet's blocks checkpointed for the forward when asked."""
        blocks = checkpointed_blocks(self._blocks) if self.checkpoint else nullcontext()
        with blocks, self.capture.recording(queries, checkpointed=self.checkpoint, also=also) as rec:
            yield rec


Current = dict[int, tuple[Evaluation, int]]  # image -> (its latest evaluation, its row in it)


@dataclass
class _Run:
    """The state of one step: the latent being updated and what has been evaluated."""

    engine: AttendExcite
    z: torch.Tensor
    run_cond: RunCond
    targets: Sequence[ImageTarget | None]
    grid: tuple[int, int]
    plan: StepPlan
    finer: tuple[tuple[int, int], ...] = ()
    result: StepResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = StepResult(self.z, {}, {})

    def evaluate(self, rows: list[int]) -> Current:
        ev = self.engine.evaluate(self.z, rows, self.run_cond, self.targets, self.grid, self.finer)
        self.result.passes += 1
        return {b: (ev, i) for i, b in enumerate(rows)}

    def apply(self, b: int, ev: Evaluation, i: int) -> None:
        """z_b <- z_b - step_size * dL/dz_b, unless the loss is 0 or anything is not finite."""
        grad = ev.grads[i]
        if not all(math.isfinite(v) for v in ev.scores[i]) or not bool(torch.isfinite(grad).all()):
            self.result.skipped[b] = "non-finite attention scores or gradient; update skipped"
            return
        if ev.losses[i] != 0:
            if self.plan.step_size != 0 and not bool(grad.any()):
                raise NoGradientError(ZERO_GRADIENT.format(image=b + 1, loss=ev.losses[i]))
            self.z[b] -= self.plan.step_size * grad.to(self.z.dtype)

    def refine(
        self,
        current: Current,
        limit: int,
        should_stop: Callable[[], bool] | None,
        on_refine: Callable[[int, int], None] | None,
    ) -> None:
        """The reference's loop per image: update, stop when the pre-update loss met the objective's goal or at
        `limit`, then one more pass (the next iteration's forward, or the final forward for the regular update)."""
        objective, plan = self.engine.objective, self.plan

        def met(b: int) -> bool:
            ev, i = current[b]
            return objective.goal_met(ev.losses[i], ev.scores[i], plan)

        iterations = {b: 0 for b in current if not met(b)}
        for b in current:
            self.result.threshold_met[b] = b not in iterations
        while iterations and not (should_stop is not None and should_stop()):
            done = []
            for b, (ev, i) in [(b, current[b]) for b in iterations]:
                iterations[b] += 1
                self.apply(b, ev, i)
                if iterations[b] >= limit or met(b):
                    done.append(b)
            if on_refine is not None:
                on_refine(max(iterations.values()), limit)
            current.update(self.evaluate(sorted(iterations)))
            for b, count in iterations.items():
                self.result.refine_iterations[b] = count
                self.result.threshold_met[b] = met(b)
            for b in done:
                del iterations[b]


def _grad(total: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(total, [leaf], allow_unused=True)
    return torch.zeros_like(leaf) if grad is None else grad.detach()


def run_step(
    unet: torch.nn.Module,
    run_cond: RunCond,
    z: torch.Tensor,
    targets: Sequence[ImageTarget | None],
    params: AEParams,
    index: int,
    total_steps: int,
) -> StepResult | None:
    """One-call public API: the A&E update and scores for full-schedule step `index` of `total_steps`."""
    engine = AttendExcite(unet, params, Schedule.from_params(params, total_steps))
    return engine.step(index, z, run_cond, targets)
