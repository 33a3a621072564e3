"""Bind (SynGen: Rassin et al., NeurIPS 2023, "Linguistic Binding in Diffusion Models"; official code
RoyiRa/Linguistic-Binding-in-Diffusion-Models, compute_loss.py and syngen_diffusion_pipeline.py). That repository
has no licence: this module is our own code, written from its formulas.

Each group is an attribute-subject binding (its last word the subject n, the words before it its attributes m):
an attribute's map should cover its subject's, and both should stay off every other word of the prompt.

- Maps: the aggregated cross-attention of each column (every head of every layer at the target grid, averaged,
  as A&E), no smoothing. A map is made a distribution over the grid's cells: P = A / sum(A). (The code scales the
  maps by 100 first and never re-softmaxes over the text columns; the scale cancels in this normalisation.)
- dist(a, b) = (KL(P_a || P_b) + KL(P_b || P_a)) / 2, KL as torch.distributions computes it for two Categoricals:
  sum_i p_i (log clamp(p_i) - log clamp(q_i)), clamped to [eps, 1 - eps] of the dtype; +inf where q_i = 0 < p_i.
- A word the tokenizer splits counts as all its pieces: D(u, v) = max of dist over their pieces.
- Per group g with subject n, attributes m_1..m_k and outside words U_g (every prompt column, start, end and
  padding excluded, that is not a piece of g's words; stop words, punctuation and other groups' words included,
  as the code's token list):
      L_g = sum_j [ D(m_j, n) - ( mean_{u in U_g} D(m_j, u) + mean_{u in U_g} D(n, u) ) / 2 ]
  (the negative part is 0 when U_g is empty); the loss is sum_g L_g. No reduction over images: one loss each.
- One update per altered step, z <- z - step_size * dL/dz when L != 0, with the constant step size (the code's
  `syngen_step_size`, 20, no sqrt decay); no refinement, no thresholds. The window is A&E's `steps_altered`
  fraction: the code alters the first 25 steps, which is 0.5 of its 50.

Where the paper and the code differ, this follows the code: the paper's words are single maps, the code takes the
maximum over a split word's pieces (above); the paper finds the pairs with spaCy, here the user names them as
groups. The code's pipeline updates only the last image of a batch (its list of updated latents is appended once,
after the loop); here every image gets its own update.

Reported per group token: its pair divergence, D(m, n) for an attribute, the mean over its attributes for the
subject; it falls as the objective works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ae_lib.objectives.base import ImageTarget, Objective
from ae_lib.params import AEParams
from ae_lib.schedule import StepPlan

Word = tuple[int, ...]  # the columns of one word: a split word's pieces, in order


def group_words(target: ImageTarget) -> list[list[Word]]:
    """Each group's words as their pieces (target.group_pieces, or each column alone where it is not filled)."""
    if target.group_pieces:
        return [[tuple(w) for w in group] for group in target.group_pieces]
    return [[(c,) for c in group] for group in target.groups]


def distributions(attention: torch.Tensor, columns: Sequence[int]) -> torch.Tensor:
    """(len(columns), queries): each column's map as a distribution over the grid (at least fp32)."""
    maps = attention[:, list(columns)].T.to(torch.promote_types(attention.dtype, torch.float32))
    return maps / maps.sum(dim=1, keepdim=True)


def symmetric_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(R, Q) and (C, Q) distributions -> (R, C) symmetric KL, as two torch.distributions Categoricals give it."""
    eps = torch.finfo(p.dtype).eps
    lp, lq = p.clamp(eps, 1 - eps).log(), q.clamp(eps, 1 - eps).log()
    a, b, la, lb = p[:, None], q[None], lp[:, None], lq[None]
    return (_kl(a, la, b, lb) + _kl(b, lb, a, la)) / 2


def _kl(p: torch.Tensor, lp: torch.Tensor, q: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    terms = torch.where(q == 0, torch.inf, p * (lp - lq))
    return torch.where(p == 0, 0.0, terms).sum(-1)


@dataclass(frozen=True)
class _Layout:
    """One target's words and pairs as index tensors, so that the loss is a few tensor ops whatever the groups.

    rows: every group word's columns (pieces); cols: rows, then the other prompt columns. For W words and P pairs
    (attribute, subject): pieces (W, R) and as_cols (W, C) mark each word's columns, attribute/subject (P,) are
    word indices, outside (P, C) marks the pair's group's outside columns, word_of (S,) the word of each subject
    of the target (what the report lists)."""

    rows: list[int]
    cols: list[int]
    pieces: torch.Tensor
    as_cols: torch.Tensor
    attribute: torch.Tensor
    subject: torch.Tensor
    outside: torch.Tensor
    word_of: torch.Tensor

    @classmethod
    def of(cls, target: ImageTarget, device: torch.device) -> _Layout:
        groups = group_words(target)
        words = [w for g in groups for w in g]
        rows = list(dict.fromkeys(c for w in words for c in w))
        cols = list(dict.fromkeys([*rows, *target.prompt_columns]))
        attribute, subject, outside, first = [], [], [], 0
        for g in groups:
            mine = {c for w in g for c in w}
            for j in range(len(g) - 1):
                attribute.append(first + j)
                subject.append(first + len(g) - 1)
                outside.append([c in target.prompt_columns and c not in mine for c in cols])
            first += len(g)
        last = {w[-1]: i for i, w in enumerate(words)}

        def tensor(values: list, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        return cls(
            rows,
            cols,
            tensor([[c in w for c in rows] for w in words], torch.bool),
            tensor([[c in w for c in cols] for w in words], torch.bool),
            tensor(attribute),
            tensor(subject),
            tensor(outside, torch.bool).reshape(len(attribute), len(cols)),
            tensor([last[c] for c in target.subjects]),
        )


class Bind(Objective):
    name = "bind"
    measure = "pair divergence (symmetric KL)"
    significant_digits = 3  # its measure can be far below 0.01 (e.g. on weak maps)
    uses_subjects = False
    takes_groups = needs_groups = needs_pairs = True

    def __init__(self, params: AEParams) -> None:
        super().__init__(params)
        self._layouts: dict[tuple[ImageTarget, torch.device], _Layout] = {}

    def layout(self, target: ImageTarget, device: torch.device) -> _Layout:
        key = (target, device)
        if key not in self._layouts:
            self._layouts[key] = _Layout.of(target, device)
        return self._layouts[key]

    def image_loss(
        self, image: int, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lay = self.layout(target, attention.device)
        table = symmetric_kl(distributions(attention, lay.rows), distributions(attention, lay.cols))
        # D(word, column): the max over the word's pieces; D(attribute, subject): then over the subject's pieces.
        word_col = table[None].masked_fill(~lay.pieces[:, :, None], -torch.inf).amax(dim=1)
        positive = word_col[lay.attribute].masked_fill(~lay.as_cols[lay.subject], -torch.inf).amax(dim=1)
        count = lay.outside.sum(dim=1).clamp(min=1)  # no outside word: no negative term

        def away(words: torch.Tensor) -> torch.Tensor:
            return torch.where(lay.outside, word_col[words], 0.0).sum(dim=1) / count

        negative = -(away(lay.attribute) + away(lay.subject)) / 2
        return (positive + negative).sum(), self._measures(lay, positive.detach())

    @staticmethod
    def _measures(lay: _Layout, positive: torch.Tensor) -> torch.Tensor:
        """Per word: its pairs' mean positive divergence (an attribute has one pair), in the target's order."""
        words = lay.pieces.shape[0]
        total = positive.new_zeros(words).index_add(0, lay.attribute, positive).index_add(0, lay.subject, positive)
        ones = torch.ones_like(positive)
        count = positive.new_zeros(words).index_add(0, lay.attribute, ones).index_add(0, lay.subject, ones)
        return (total / count)[lay.word_of]

    def step_size(self, plan: StepPlan) -> float:
        return self.params.step_size

    def maps(self, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]) -> torch.Tensor:
        return attention[:, list(target.subjects)].T.reshape(len(target.subjects), *grid)
