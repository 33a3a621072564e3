"""Stand-in for modules/sd_emphasis.py (v1.10.1): how per-token multipliers are applied to the text encoder output."""

from __future__ import annotations

import torch


class Emphasis:
    """modules/sd_emphasis.py:Emphasis -- base: leaves z unchanged."""

    name: str = "Base"
    tokens: list[list[int]]
    multipliers: torch.Tensor
    z: torch.Tensor

    def after_transformers(self) -> None:
        pass


class EmphasisNone(Emphasis):
    """modules/sd_emphasis.py:EmphasisNone -- brackets stay text (tokenize_line skips parse_prompt_attention)."""

    name = "None"


class EmphasisIgnore(Emphasis):
    """modules/sd_emphasis.py:EmphasisIgnore"""

    name = "Ignore"


class EmphasisOriginal(Emphasis):
    """modules/sd_emphasis.py:EmphasisOriginal -- z * multiplier per column, then rescaled to the original mean."""

    name = "Original"

    def after_transformers(self) -> None:
        original_mean = self.z.mean()
        self.z = self.z * self.multipliers.reshape((*self.multipliers.shape, 1)).expand(self.z.shape)
        new_mean = self.z.mean()
        self.z = self.z * (original_mean / new_mean)


class EmphasisOriginalNoNorm(EmphasisOriginal):
    """modules/sd_emphasis.py:EmphasisOriginalNoNorm"""

    name = "No norm"

    def after_transformers(self) -> None:
        self.z = self.z * self.multipliers.reshape((*self.multipliers.shape, 1)).expand(self.z.shape)


options = [EmphasisNone, EmphasisIgnore, EmphasisOriginal, EmphasisOriginalNoNorm]


def get_current_option(emphasis_option_name: str) -> type[Emphasis]:
    """modules/sd_emphasis.py:get_current_option -- unknown names fall back to Original."""
    return next(iter([x for x in options if x.name == emphasis_option_name]), EmphasisOriginal)
