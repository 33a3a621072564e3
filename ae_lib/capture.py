"""Differentiable cross-attention probabilities for one A&E pass, and nothing outside it.

Hooks are forward PRE-hooks on the cross-attention (`attn2`) modules (ldm/sgm `CrossAttention`, ComfyUI's, or
diffusers' `Attention`, which gets its context as `encoder_hidden_states=`), registered when a pass starts and
removed when it ends (also on error), so ordinary sampling passes run whatever attention implementation
the host installed, untouched. A pre-hook sees exactly the module's inputs, recomputes
softmax(Q K^T * scale) in fp32 from the module's own to_q / to_k / heads / scale, and keeps only the sum
over heads (what the loss needs). After the last layer at the target resolution the pass is stopped
(`StopPass`), so nothing after it runs and backward covers only what ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ae_lib.memory import keep_saved_tensors

KeyContext = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class StopPass(BaseException):
    """Raised from the last target layer's hook; BaseException so host code's `except Exception` lets it by."""


def is_cross_attention(name: str, module: nn.Module) -> bool:
    return name.rsplit(".", 1)[-1] == "attn2" and all(hasattr(module, a) for a in ("to_q", "to_k", "heads"))


def find_cross_attention(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in unet.named_modules() if is_cross_attention(n, m)]


def grid_candidates(height: int, width: int, levels: int = 6) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 downsample (ceil division, as the UNet's convs give)."""
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


def target_grid(latent_hw: tuple[int, int], attention_res: int = 0) -> tuple[int, int]:
    """The attention grid used for the loss: latent/4 by default, or the level whose height is attention_res."""
    sizes = grid_candidates(*latent_hw)
    if attention_res <= 0:
        return sizes[2]
    for size in sizes:
        if size[0] == attention_res:
            return size
    heights = ", ".join(str(h) for h, _ in sizes[:5])
    msg = f"attention resolution {attention_res} matches no layer for this image size (available: {heights})"
    raise ValueError(msg)


def at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _linear32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    dtype = at_least_fp32(x.dtype)
    bias = getattr(layer, "bias", None)
    return F.linear(x.to(dtype), layer.weight.to(dtype), None if bias is None else bias.to(dtype))


def attention_probs(module: nn.Module, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T * scale), (B, heads, queries, keys), in fp32 (fp64 for fp64 inputs) whatever the host runs."""
    heads = int(module.heads)
    with torch.autocast(device_type=x.device.type, enabled=False):
        q = _linear32(module.to_q, x)
        k = _linear32(module.to_k, context)
        b, n, inner = q.shape
        dim_head = inner // heads
        scale = float(getattr(module, "scale", dim_head**-0.5))
        q = q.reshape(b, n, heads, dim_head).transpose(1, 2)
        k = k.reshape(b, k.shape[1], heads, dim_head).transpose(1, 2)
        return (q @ k.transpose(-1, -2) * scale).softmax(dim=-1)


@dataclass
class Recording:
    """What one pass captured: the sum over heads of every target layer, and how many heads that was."""

    queries: int
    stop_after: int | None  # target layers expected in a pass; None = not known yet
    prob_sum: torch.Tensor | None = None
    heads: int = 0
    layers: list[str] = field(default_factory=list)
    finer_seen: bool = False  # a layer finer than the target ran after target layers: the pass can stop
    checkpointed: bool = False  # the UNet's blocks run under torch.utils.checkpoint in this pass

    def add(self, name: str, probs: torch.Tensor) -> None:
        summed = probs.sum(dim=1)
        self.prob_sum = summed if self.prob_sum is None else self.prob_sum + summed
        self.heads += probs.shape[1]
        self.layers.append(name)

    def mean(self) -> torch.Tensor:
        """Mean over every head of every target layer (the reference's aggregate), (B, queries, keys)."""
        if self.prob_sum is None:
            msg = f"no cross-attention layer with {self.queries} query tokens ran in this pass"
            raise RuntimeError(msg)
        return self.prob_sum / self.heads


def _context(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The keys' source: ldm/sgm/ComfyUI pass `context` (2nd positional), diffusers' Attention
    `encoder_hidden_states=` (None: self-attention)."""
    for name in ("context", "encoder_hidden_states"):
        if kwargs.get(name) is not None:
            return kwargs[name]
    return args[1] if len(args) > 1 else None


class AttentionCapture:
    """Observes a UNet's attn2 modules during `recording()` only.

    `key_context` lets a host transform the context used for keys (e.g. hypernetworks), so the captured
    probabilities are the ones its UNet used. `truncate` stops each pass after the last target layer.
    """

    def __init__(self, unet: nn.Module, key_context: KeyContext | None = None, truncate: bool = True) -> None:
        self.modules = find_cross_attention(unet)
        if not self.modules:
            msg = "this UNet has no cross-attention (attn2) modules"
            raise ValueError(msg)
        self.key_context = key_context
        self.truncate = truncate
        self._layer_count: dict[int, int] = {}  # queries -> target layers seen in a whole pass

    def _hook(self, name: str, rec: Recording) -> Callable:
        def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs.get("x", kwargs.get("hidden_states"))
            queries = x.shape[1]
            if queries != rec.queries:
                rec.finer_seen = rec.finer_seen or (queries > rec.queries and bool(rec.layers))
                if self.truncate and rec.finer_seen and rec.stop_after is None:
                    raise StopPass
                return
            context = _context(args, kwargs)
            context = x if context is None else context
            # Inside a checkpointed block the capture's own tensors are saved directly: recomputation runs
            # without these hooks, so it must not be asked to reproduce them.
            with keep_saved_tensors() if rec.checkpointed else nullcontext():
                if self.key_context is not None:
                    context = self.key_context(module, context)
                rec.add(name, attention_probs(module, x, context))
            if self.truncate and rec.stop_after is not None and len(rec.layers) >= rec.stop_after:
                raise StopPass

        return pre_hook

    @contextmanager
    def recording(self, queries: int, checkpointed: bool = False) -> Iterator[Recording]:
        """Hooks on for one pass; a StopPass raised inside is absorbed here. Hooks always come off.

        `checkpointed`: the pass runs the UNet's blocks under torch.utils.checkpoint (see ae_lib.memory).
        """
        stop_after = self._layer_count.get(queries) if self.truncate else None
        rec = Recording(queries, stop_after, checkpointed=checkpointed)
        handles = [m.register_forward_pre_hook(self._hook(n, rec), with_kwargs=True) for n, m in self.modules]
        try:
            yield rec
        except StopPass:
            pass
        finally:
            for h in handles:
                h.remove()
        if rec.layers and queries not in self._layer_count:
            self._layer_count[queries] = len(rec.layers)
