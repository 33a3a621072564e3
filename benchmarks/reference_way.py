"""An altered step done the reference's way, for comparison: what yuval-alaluf/Attend-and-Excite does per step.

Its AttendExciteAttnProcessor replaces every attention layer's attention with explicit
softmax(Q K^T * scale) probabilities and keeps every cross-attention map; the UNet runs to the end on the
conditional rows with the weights as they come (requires_grad=True) and the output held; the maps of the
attention resolution are averaged over layers and heads; then torch.autograd.grad w.r.t. the latent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from einops import rearrange
from torch import nn

from ae_lib import ImageTarget
from ae_lib.scores import image_loss, subject_scores


def _explicit_attention(module: nn.Module, maps: list[torch.Tensor] | None) -> Callable:
    def forward(x: torch.Tensor, context: torch.Tensor | None = None, mask: object = None) -> torch.Tensor:
        h = module.heads
        context = x if context is None else context
        q, k, v = (
            rearrange(t, "b n (h d) -> (b h) n d", h=h)
            for t in (module.to_q(x), module.to_k(context), module.to_v(context))
        )
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
        probs = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=module.scale).softmax(dim=-1)
        if maps is not None:
            maps.append(probs)
        out = rearrange(torch.bmm(probs, v), "(b h) n d -> b n (h d)", h=h)
        return module.to_out(out)

    return forward


@contextmanager
def reference_processors(unet: nn.Module, maps: list[torch.Tensor]) -> Iterator[None]:
    """Explicit attention on every attn1/attn2 layer; attn2 probabilities appended to `maps`."""
    layers = [(n, m) for n, m in unet.named_modules() if n.rsplit(".", 1)[-1] in ("attn1", "attn2")]
    try:
        for name, module in layers:
            module.__dict__["forward"] = _explicit_attention(module, maps if name.endswith("attn2") else None)
        yield
    finally:
        for _, module in layers:
            module.__dict__.pop("forward", None)


def reference_step(
    unet: nn.Module,
    z: torch.Tensor,
    run_cond: Callable[[torch.Tensor, list[int]], torch.Tensor],
    targets: Sequence[ImageTarget],
    grid: tuple[int, int],
    step_size: float,
) -> torch.Tensor:
    """One altered step without refinement, every image of z at once; returns the updated latent."""
    rows = list(range(z.shape[0]))
    latents = z.detach().clone().requires_grad_(True)
    maps: list[torch.Tensor] = []
    with torch.enable_grad(), reference_processors(unet, maps):
        out = run_cond(latents, rows)  # held until backward, as the reference's noise_pred_text is
        queries = grid[0] * grid[1]
        selected = [m.reshape(len(rows), -1, queries, m.shape[-1]) for m in maps if m.shape[1] == queries]
        total = None
        for b, target in enumerate(targets):
            attention = torch.cat([m[b] for m in selected]).mean(dim=0)
            loss = image_loss(subject_scores(attention, target.text_columns, target.subjects, grid))
            total = loss if total is None else total + loss
        (grad,) = torch.autograd.grad(total, [latents])
        del out
    return latents.detach() - step_size * grad
