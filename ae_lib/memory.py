"""What an A&E pass changes on the model for its own duration to use less memory, and puts back afterwards.

`frozen_parameters`: the pass needs d loss / d latent only. With every weight's requires_grad off, autograd
does not save the activations that only a weight's gradient would need (a conv or linear keeps its input for
that) and records nothing for ops whose inputs are all constant (the text side of cross-attention, the time
embedding). The latent's gradient comes from the same backward formulas on the same values: bit-identical.

`checkpointed_blocks`: optional gradient checkpointing for low-memory setups. Each UNet block that runs keeps
only its inputs; backward recomputes one block at a time (torch.utils.checkpoint, non-reentrant).

Both are context managers that restore every flag and attribute they touched, also when the pass raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

# The sequentially run blocks of ldm/sgm UNets (input_blocks, middle_block, output_blocks) and diffusers'.
BLOCK_ATTRIBUTES = ("input_blocks", "middle_block", "output_blocks", "down_blocks", "mid_block", "up_blocks")


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """requires_grad=False on every parameter inside the block; each parameter's own flag is restored after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def unet_blocks(unet: nn.Module) -> list[nn.Module]:
    """The blocks a UNet forward runs one after another; ValueError when it has none of the known names."""
    blocks: list[nn.Module] = []
    for name in BLOCK_ATTRIBUTES:
        part = getattr(unet, name, None)
        if isinstance(part, nn.ModuleList):
            blocks.extend(part)
        elif isinstance(part, nn.Module):
            blocks.append(part)
    if not blocks:
        names = ", ".join(BLOCK_ATTRIBUTES)
        msg = f"gradient checkpointing needs a UNet with block lists ({names}); this one has none"
        raise ValueError(msg)
    return blocks


def _checkpointed(forward: Callable) -> Callable:
    def run(*args: object, **kwargs: object) -> object:
        # Keyword arguments go through a partial so that none can collide with checkpoint()'s own options.
        return checkpoint(functools.partial(forward, **kwargs), *args, use_reentrant=False)

    return run


@contextmanager
def checkpointed_blocks(blocks: Sequence[nn.Module]) -> Iterator[None]:
    """Each block's forward runs under non-reentrant checkpointing inside the block.

    The wrapper is an instance attribute shadowing the class's forward (module hooks still run, once, around
    it); afterwards the attribute is removed again, or a host's own instance-level forward is put back.
    Recomputation during backward calls the block's original forward; hooks on its submodules run again then.
    """
    missing = object()
    saved = [(block, block.__dict__.get("forward", missing)) for block in blocks]
    try:
        for block, _ in saved:
            block.__dict__["forward"] = _checkpointed(block.forward)
        yield
    finally:
        for block, previous in saved:
            if previous is missing:
                block.__dict__.pop("forward", None)
            else:
                block.__dict__["forward"] = previous


def keep_saved_tensors() -> torch.autograd.graph.saved_tensors_hooks:
    """Saved-tensor hooks that store tensors as autograd normally does, shadowing any enclosing hooks.

    Ops run under these are neither packed nor recomputed by an enclosing checkpoint (the A&E capture's own
    ops, which recomputation, running without the capture's hooks, would not repeat). Detached on pack, as
    torch.utils.checkpoint does, so a saved output does not hold its own graph alive.
    """
    return torch.autograd.graph.saved_tensors_hooks(_pack, _unpack)


def _pack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach() if tensor.requires_grad else tensor


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor
