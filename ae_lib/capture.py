"""Differentiable cross-attention probabilities for one A&E pass, and nothing outside it.

Hooks are forward PRE-hooks on the cross-attention (`attn2`) modules (ldm/sgm `CrossAttention`, ComfyUI's, or
diffusers' `Attention`, which gets its context as `encoder_hidden_states=`), registered when a pass starts and
removed when it ends (also on error), so ordinary sampling passes run whatever attention implementation
the host installed, untouched. A pre-hook sees exactly the module's inputs, recomputes
softmax(Q K^T * scale) in fp32 from the module's own to_q / to_k / heads / scale, and keeps only the sum
over heads (what the loss needs). After the last layer at the target resolution the pass is stopped
(`StopPass`), so nothing after it runs and backward covers only what ran.

An objective may read further grids too (`also`: their query counts; Divide & Bind's attribute maps come from the
finer layers): each is kept as its own sum over heads and layers, and the pass stops after the last layer of any
kept grid. With no further grid, a pass is recorded and stopped exactly as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

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
    """The attention grid used for the loss: latent/4 by default, or the level whose height is attention_res.

    This is arithmetic on the latent's size; which of these grids the model's layers really produce is
    `attention_grids` (the glues check that before sampling)."""
    sizes = grid_candidates(*latent_hw)
    if attention_res <= 0:
        return sizes[2]
    for size in sizes:
        if size[0] == attention_res:
            return size
    heights = ", ".join(str(h) for h, _ in sizes if h > 1)
    msg = (f"attention resolution {attention_res} matches no downsampling level of a {latent_hw[0]}x{latent_hw[1]} "
           f"latent (its levels: {heights})")
    raise ValueError(msg)


# Where the UNet's blocks are, in the order a forward runs them: ldm/sgm/ComfyUI/Forge, then diffusers.
_PARTS = {"input_blocks": 0, "down_blocks": 0, "middle_block": 1, "mid_block": 1, "output_blocks": 2, "up_blocks": 2}
_BLOCK = re.compile(r"^(?P<prefix>(?:.+\.)?)(?P<part>" + "|".join(_PARTS) + r")(?:\.(?P<index>\d+))?\.")


def _resampling(block: nn.Module) -> tuple[nn.Module | None, bool]:
    """(the module that halves the spatial size in this block, or None; whether the block doubles it)."""
    down, up = None, False
    for module in block.modules():
        kind = type(module).__name__
        up = up or "Upsample" in kind
        strided = isinstance(module, nn.Conv2d | nn.AvgPool2d) and _pair(module.stride) == (2, 2)
        if down is None and (strided or "Downsample" in kind):
            down = module
    return down, up


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _halve(size: int, module: nn.Module, axis: int) -> int:
    """The size after this downsampling module (a strided conv or pool: floor((n + 2p - k) / s) + 1)."""
    layer = next((m for m in module.modules() if isinstance(m, nn.Conv2d | nn.AvgPool2d)), None)
    if layer is None:
        return math.ceil(size / 2)
    padding = 0 if isinstance(layer.padding, str) else layer.padding  # "same"/"valid" convs do not halve
    k, s, p = _pair(layer.kernel_size)[axis], _pair(layer.stride)[axis], _pair(padding)[axis]
    return (size + 2 * p - k) // s + 1


def _blocks_in_order(unet: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The UNet's top-level blocks under `prefix` in forward order (down path, middle, up path)."""
    found: list[tuple[int, int, str, nn.Module]] = []
    for part, order in _PARTS.items():
        try:
            container = unet.get_submodule(prefix + part)
        except AttributeError:
            continue
        if isinstance(container, nn.ModuleList):
            found += [(order, i, f"{prefix}{part}.{i}", b) for i, b in enumerate(container)]
        else:
            found.append((order, 0, prefix + part, container))
    return [(name, block) for _, _, name, block in sorted(found, key=lambda t: t[:2])]


def attention_grids(unet: nn.Module, latent_hw: tuple[int, int]) -> dict[str, tuple[int, int]] | None:
    """The attention grid each cross-attention layer of this UNet produces for a latent of `latent_hw`, read
    from the model: where the layer sits among the UNet's downsampling and upsampling blocks (in forward order;
    a block's resampling runs after its attention), and each downsampling module's own kernel, stride and
    padding. None for a layout this does not know (an attn2 outside input/middle/output or down/mid/up blocks).
    """
    layers = find_cross_attention(unet)
    matches = {name: _BLOCK.match(name) for name, _ in layers}
    if not layers or any(m is None for m in matches.values()):
        return None
    grids: dict[str, tuple[int, int]] = {}
    for prefix in {m.group("prefix") for m in matches.values() if m}:
        level, sizes, where = 0, [tuple(latent_hw)], {}
        for name, block in _blocks_in_order(unet, prefix):
            where[name] = level
            down, up = _resampling(block)
            if down is not None:
                if level + 1 >= len(sizes):
                    h, w = sizes[level]
                    sizes.append((_halve(h, down, 0), _halve(w, down, 1)))
                level += 1
            elif up:
                level = max(level - 1, 0)
        for name, m in matches.items():
            if m and m.group("prefix") == prefix:
                part = m.group("prefix") + m.group("part")
                block = next((b for b in (f"{part}.{m.group('index')}", part) if b in where), None)
                if block is None:
                    return None
                grids[name] = sizes[where[block]]
    return grids


def attention_res_problem(unet: nn.Module, latent_hw: tuple[int, int], attention_res: int) -> str | None:
    """Why `attention_res` (0 = auto) selects no cross-attention layer of this UNet at this latent size, in the
    user's unit (the height of the attention grid) with the heights its layers really run at; None when it does,
    or when the layout is unknown (then the first A&E step finds out)."""
    grids = attention_grids(unet, latent_hw)
    if grids is None:
        return None
    heights = sorted({h for h, _ in grids.values()}, reverse=True)
    try:
        wanted = target_grid(latent_hw, attention_res)
    except ValueError:
        wanted = None
    if wanted is not None and wanted in grids.values():
        return None
    available = ", ".join(str(h) for h in heights)
    size = f"{latent_hw[0]}x{latent_hw[1]} latent"
    if attention_res <= 0:
        return (f"attention resolution 0 (auto: latent/4 = {wanted[0] if wanted else '?'}) matches no cross-attention "
                f"layer of this model for a {size}; its layers run at {available}: set attention resolution to one "
                "of these")
    return (f"attention resolution {attention_res} matches no cross-attention layer of this model for a {size}; "
            f"its layers run at {available} (or 0 = auto)")


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
class GridSum:
    """One further grid's capture in a pass: the sum over heads of its layers, and how many heads that was."""

    prob_sum: torch.Tensor | None = None
    heads: int = 0
    layers: list[str] = field(default_factory=list)

    def add(self, name: str, probs: torch.Tensor) -> None:
        summed = probs.sum(dim=1)
        self.prob_sum = summed if self.prob_sum is None else self.prob_sum + summed
        self.heads += probs.shape[1]
        self.layers.append(name)


@dataclass
class Recording:
    """What one pass captured: the sum over heads of every target layer, and how many heads that was; and each
    further grid's own sum (`also`, by query count)."""

    queries: int
    stop_after: int | None  # target layers expected in a pass; None = not known yet
    prob_sum: torch.Tensor | None = None
    heads: int = 0
    layers: list[str] = field(default_factory=list)
    finer_seen: bool = False  # a layer finer than the target ran after target layers: the pass can stop
    checkpointed: bool = False  # the UNet's blocks run under torch.utils.checkpoint in this pass
    also: dict[int, GridSum] = field(default_factory=dict)  # further grids kept, by query count

    def kept(self) -> int:
        """Layers recorded so far, of every kept grid."""
        return len(self.layers) + sum(len(g.layers) for g in self.also.values())

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
        self._layer_count: dict[tuple[int, ...], int] = {}  # grids' queries -> their layers in a whole pass

    def _hook(self, name: str, rec: Recording) -> Callable:
        def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs.get("x", kwargs.get("hidden_states"))
            queries = x.shape[1]
            further = rec.also.get(queries)
            if queries != rec.queries and further is None:
                rec.finer_seen = rec.finer_seen or (queries > rec.queries and bool(rec.layers))
                # With further grids a first pass runs to the end: which layer is the last one kept is learned.
                if self.truncate and rec.finer_seen and rec.stop_after is None and not rec.also:
                    raise StopPass
                return
            context = _context(args, kwargs)
            context = x if context is None else context
            # Inside a checkpointed block the capture's own tensors are saved directly: recomputation runs
            # without these hooks, so it must not be asked to reproduce them.
            with keep_saved_tensors() if rec.checkpointed else nullcontext():
                if self.key_context is not None:
                    context = self.key_context(module, context)
                (rec if further is None else further).add(name, attention_probs(module, x, context))
            if self.truncate and rec.stop_after is not None and rec.kept() >= rec.stop_after:
                raise StopPass

        return pre_hook

    @contextmanager
    def recording(
        self, queries: int, checkpointed: bool = False, also: Sequence[int] = ()
    ) -> Iterator[Recording]:
        """Hooks on for one pass; a StopPass raised inside is absorbed here. Hooks always come off.

        `checkpointed`: the pass runs the UNet's blocks under torch.utils.checkpoint (see ae_lib.memory).
        `also`: query counts of further grids to keep (Recording.also), each apart from the target grid.
        """
        further = tuple(q for q in dict.fromkeys(also) if q != queries)
        key = (queries, *further)
        stop_after = self._layer_count.get(key) if self.truncate else None
        rec = Recording(queries, stop_after, checkpointed=checkpointed, also={q: GridSum() for q in further})
        handles = [m.register_forward_pre_hook(self._hook(n, rec), with_kwargs=True) for n, m in self.modules]
        try:
            yield rec
        except StopPass:
            pass
        finally:
            for h in handles:
                h.remove()
        if rec.layers and key not in self._layer_count:
            self._layer_count[key] = rec.kept()
