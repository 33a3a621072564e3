"""Shim for k_diffusion/utils.py: only what sampling.py/external.py call (append_dims)."""

from __future__ import annotations

import torch


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """k_diffusion/utils.py:append_dims -- add trailing singleton dims up to target_dims."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]
