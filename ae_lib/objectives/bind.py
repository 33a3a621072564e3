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

import torch

from ae_lib.objectives.base import ImageTarget, Objective
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


class _Distances:
    """D(word, word) for one image: max of the symmetric KL over the pieces, from one (rows, columns) table."""

    def __init__(self, attention: torch.Tensor, words: Sequence[Word], others: Sequence[int]) -> None:
        self.rows = list(dict.fromkeys(c for w in words for c in w))
        self.cols = list(dict.fromkeys([*self.rows, *others]))
        table = symmetric_kl(distributions(attention, self.rows), distributions(attention, self.cols))
        self.table = table
        self.row_at = {c: i for i, c in enumerate(self.rows)}
        self.col_at = {c: i for i, c in enumerate(self.cols)}

    def __call__(self, word: Word, other: Word) -> torch.Tensor:
        block = self.table[[self.row_at[c] for c in word]][:, [self.col_at[c] for c in other]]
        return block.max()

    def outside(self, word: Word, columns: Sequence[int]) -> torch.Tensor:
        """mean over `columns` of D(word, column) (each column alone, as the code takes the other words)."""
        block = self.table[[self.row_at[c] for c in word]][:, [self.col_at[c] for c in columns]]
        return block.max(dim=0).values.mean()


class Bind(Objective):
    name = "bind"
    measure = "pair divergence (symmetric KL)"
    uses_subjects = False
    takes_groups = needs_groups = needs_pairs = True

    def image_loss(
        self, image: int, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        groups = group_words(target)
        distance = _Distances(attention, [w for g in groups for w in g], target.prompt_columns)
        loss = attention.new_zeros((), dtype=distance.table.dtype)
        measured: dict[int, torch.Tensor] = {}
        for words in groups:
            *attributes, subject = words
            mine = {c for w in words for c in w}
            outside = [c for c in dict.fromkeys(target.prompt_columns) if c not in mine]
            pairs = []
            for attribute in attributes:
                pair = distance(attribute, subject)
                loss = loss + pair
                if outside:
                    loss = loss - (distance.outside(attribute, outside) + distance.outside(subject, outside)) / 2
                pairs.append(pair.detach())
                measured[attribute[-1]] = pair.detach()
            measured[subject[-1]] = torch.stack(pairs).mean()
        return loss, torch.stack([measured[c] for c in target.subjects])

    def step_size(self, plan: StepPlan) -> float:
        return self.params.step_size

    def maps(self, attention: torch.Tensor, target: ImageTarget, grid: tuple[int, int]) -> torch.Tensor:
        return attention[:, list(target.subjects)].T.reshape(len(target.subjects), *grid)
