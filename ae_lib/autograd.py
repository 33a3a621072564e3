"""Autograd for A&E's pass inside hosts that sample without it, decided by what the host's tensors are.

Hosts differ in how they run sampling, not in what A&E needs from them:
- A1111 samples under `torch.no_grad`: `enable_grad` is enough.
- Forge, Forge Classic, Forge Neo and ComfyUI sample (and load weights) under `torch.inference_mode()`:
  `enable_grad` inside it records nothing. The pass leaves inference mode, and each inference-tensor
  parameter or buffer is swapped for a normal tensor that *aliases its storage* (zero-copy, nothing is
  duplicated), put back when the pass ends.
- Some UNets (Forge's backend/nn/unet.py, ldm_patched in Forge Classic) add transformer residuals in place
  (`x += n`) into a tensor LayerNorm saved: the inputs of norm1/norm2/norm3 are cloned during the pass.
  Where the blocks add out of place (ldm, ComfyUI) the clones are not needed and not made.

`grad_scope(unet)` applies exactly what the running host needs; everything is undone when it closes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from typing import Any

import torch
from torch import nn

NORMS = ("norm1", "norm2", "norm3")


def _alias(t: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference) tensor over the same storage: autograd may save it, and no memory is copied."""
    out = torch.empty(0, dtype=t.dtype, device=t.device)
    return out.set_(t.untyped_storage(), t.storage_offset(), t.shape, t.stride())


def has_inference_tensors(module: nn.Module) -> bool:
    return any(t.is_inference() for t in (*module.parameters(), *module.buffers()))


@contextmanager
def normal_parameters(module: nn.Module) -> Iterator[int]:
    """Swap every inference-tensor parameter/buffer for a zero-copy alias; the originals come back after."""
    swapped: list[tuple[dict, str, Any]] = []
    try:
        with torch.inference_mode(False):
            for m in module.modules():
                for store in (m._parameters, m._buffers):
                    for name, value in store.items():
                        if value is None or not value.is_inference():
                            continue
                        swapped.append((store, name, value))
                        alias = _alias(value)
                        store[name] = nn.Parameter(alias, requires_grad=False) if store is m._parameters else alias
        yield len(swapped)
    finally:
        for store, name, value in reversed(swapped):
            store[name] = value


def _clone_input(module: nn.Module, args: tuple) -> tuple | None:
    if torch.is_grad_enabled() and args and isinstance(args[0], torch.Tensor):
        return (args[0].clone(), *args[1:])
    return None


def _norm_modules(module: nn.Module) -> list[nn.Module]:
    return [m for name, m in module.named_modules() if name.rsplit(".", 1)[-1] in NORMS and isinstance(m, nn.LayerNorm)]


@contextmanager
def cloned_norm_inputs(module: nn.Module) -> Iterator[None]:
    """Pre-hooks on the transformer blocks' norms: their saved input is a copy the in-place `x += n` leaves alone."""
    handles = [m.register_forward_pre_hook(_clone_input) for m in _norm_modules(module)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


IN_PLACE_RESIDUAL = re.compile(r"\bx\s*\+=\s*n\b")  # backend/nn/unet.py, ldm_patched: `x += n` after attn/ff


@lru_cache(maxsize=32)
def _block_adds_in_place(cls: type) -> bool:
    for name in ("forward", "_forward"):
        fn = getattr(cls, name, None)
        if fn is None:
            continue
        try:
            if IN_PLACE_RESIDUAL.search(inspect.getsource(fn)):
                return True
        except (OSError, TypeError):
            return True  # source unknown: cloning is exact and costs only activation memory
    return False


def adds_residuals_in_place(unet: nn.Module) -> bool:
    """Whether the UNet's transformer blocks add residuals in place (`x += n`), read from their own source."""
    classes = {type(m) for m in unet.modules() if hasattr(m, "norm1") and hasattr(m, "attn2")}
    return any(_block_adds_in_place(cls) for cls in classes)


@contextmanager
def grad_scope(unet: nn.Module, clone_norms: bool | None = None) -> Iterator[None]:
    """Where an A&E pass runs: grad on, out of inference mode, weights autograd can save, in-place adds safe.

    `clone_norms`: None decides from the UNet's own transformer-block source (`adds_residuals_in_place`).
    """
    if clone_norms is None:
        clone_norms = adds_residuals_in_place(unet)
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        if has_inference_tensors(unet):
            stack.enter_context(normal_parameters(unet))
        if clone_norms:
            stack.enter_context(cloned_norm_inputs(unet))
        yield
