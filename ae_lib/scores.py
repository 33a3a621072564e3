"""Scores and loss from aggregated attention, exactly as the reference computes them.

Per image: drop the start column and keep the rule's text columns, x100, softmax over them per pixel;
each subject's column as an h x w map, reflect-padded and smoothed with the reference's 3x3 kernel; the
score is the map's max; the loss is max over subjects of max(0, 1 - score) (the first subject wins ties,
as Python's max does in the reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from ae_lib.tokens import TokenRule

__all__ = ["TokenRule", "image_loss", "reference_kernel", "subject_maps", "subject_scores"]

KERNEL_SIZE = 3


@lru_cache(maxsize=16)
def _kernel64(sigma: float, size: int) -> tuple[float, ...]:
    # The reference's "Gaussian": exp(-((x - mu) / (2 sigma))^2), not exp(-(x - mu)^2 / (2 sigma^2)).
    mean = (size - 1) / 2
    g = torch.arange(size, dtype=torch.float32)
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    kernel = torch.ones(size, size, dtype=torch.float32)  # fp32 whatever the default dtype, as the reference
    for grid in (gy, gx):
        kernel = kernel * (1 / (sigma * math.sqrt(2 * math.pi)) * torch.exp(-(((grid - mean) / (2 * sigma)) ** 2)))
    kernel = kernel / kernel.sum()
    return tuple(kernel.flatten().tolist())


def reference_kernel(sigma: float, size: int = KERNEL_SIZE, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, size, size) fp32 kernel, built once per sigma."""
    return torch.tensor(_kernel64(float(sigma), size), dtype=torch.float32, device=device).view(1, 1, size, size)


def subject_maps(
    attention: torch.Tensor, text_columns: Sequence[int], subjects: Sequence[int], grid: tuple[int, int]
) -> torch.Tensor:
    """(S, h, w) maps of the subjects after the x100 softmax over text columns; attention is (queries, keys)."""
    cols = list(text_columns)
    text = attention[:, cols].to(torch.promote_types(attention.dtype, torch.float32)) * 100
    text = text.softmax(dim=-1)
    where = [cols.index(s) for s in subjects]
    return text[:, where].T.reshape(len(where), *grid)


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Reflect-pad by 1 and convolve each map with the reference kernel; (S, h, w) -> (S, h, w)."""
    pad = (KERNEL_SIZE - 1) // 2
    x = F.pad(maps.unsqueeze(1), (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(x, reference_kernel(sigma, device=maps.device).to(maps.dtype)).squeeze(1)


def subject_scores(
    attention: torch.Tensor,
    text_columns: Sequence[int],
    subjects: Sequence[int],
    grid: tuple[int, int],
    smoothing: bool = True,
    sigma: float = 0.5,
) -> torch.Tensor:
    """(S,) max attention per subject (differentiable)."""
    maps = subject_maps(attention, text_columns, subjects, grid)
    if smoothing:
        maps = smooth(maps, sigma)
    return maps.flatten(1).max(dim=1).values


def image_loss(scores: torch.Tensor) -> torch.Tensor:
    """max over subjects of max(0, 1 - score); the gradient flows through the first most neglected subject."""
    losses = (1.0 - scores).clamp(min=0.0)
    return losses[int(torch.argmax(losses.detach()))]
