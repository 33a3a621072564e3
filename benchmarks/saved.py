"""Bytes autograd saves for backward, counted with torch.autograd.graph.saved_tensors_hooks.

Each distinct storage counts once with its full size (views share storage); the model's parameters and
buffers are left out (they exist anyway). Saved tensors are held until the meter is dropped, so a freed
address cannot be reused and miscounted within one measurement; the total is what autograd held for
backward at the end of the forward, the peak of a pass that keeps its output until backward.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


class SavedBytes:
    def __init__(self, model: nn.Module) -> None:
        owned = itertools.chain(model.parameters(), model.buffers())
        self._skip = {t.untyped_storage().data_ptr() for t in owned}
        self._sizes: dict[int, int] = {}
        self._held: list[torch.Tensor] = []
        self.label = "outside blocks"
        self.by_label: dict[str, int] = defaultdict(int)

    @property
    def total(self) -> int:
        return sum(self._sizes.values())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._skip and ptr not in self._sizes:
            self._sizes[ptr] = storage.nbytes()
            self.by_label[self.label] += storage.nbytes()
            self._held.append(tensor.detach())
        return tensor.detach() if tensor.requires_grad else tensor

    @contextmanager
    def counting(self) -> Iterator[SavedBytes]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack):
            yield self

    @contextmanager
    def labelled(self, blocks: Sequence[nn.Module]) -> Iterator[None]:
        """Attribute what is saved to the block that was running (by index), to find the largest block."""

        def enter(index: int):
            def hook(module: nn.Module, args: tuple) -> None:
                self.label = f"block {index}"

            return hook

        handles = [b.register_forward_pre_hook(enter(i)) for i, b in enumerate(blocks)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            self.label = "outside blocks"

    def largest_block(self) -> int:
        return max((v for k, v in self.by_label.items() if k.startswith("block")), default=0)


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor
