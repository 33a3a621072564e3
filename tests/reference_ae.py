"""An independent, plain implementation of the reference's math (algorithm.md), for one image at a time.

Written the way the reference code is structured, not the way ae_lib is: every attn2 module's forward is
replaced for the whole pass by one that computes explicit probabilities and stores those of the right
size; the UNet runs to the end; maps are concatenated over (layer, head) and averaged; the text slice is
[1:-1] (SD1) or [1:eot] (normalize_eot); x100, softmax; the smoothing kernel is built in the loop; losses
use Python's max; refinement re-runs the passes the reference runs.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange


class Store:
    def __init__(self) -> None:
        self.maps: list[torch.Tensor] = []


@contextmanager
def explicit_attention(unet, store: Store, res_pixels: int):
    originals = {}

    def make_forward(module):
        def forward(x, context=None, mask=None):
            h = module.heads
            q = module.to_q(x)
            context = x if context is None else context
            k = module.to_k(context)
            v = module.to_v(context)
            q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=h) for t in (q, k, v))
            sim = torch.baddbmm(
                torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype),
                q,
                k.transpose(-1, -2),
                beta=0,
                alpha=module.scale,
            )
            probs = sim.softmax(dim=-1)
            if probs.shape[1] == res_pixels:
                store.maps.append(probs)
            out = torch.bmm(probs, v)
            return module.to_out(rearrange(out, "(b h) n d -> b n (h d)", h=h))

        return forward

    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            originals[module] = module.forward
            module.forward = make_forward(module)
    try:
        yield
    finally:
        for module, fwd in originals.items():
            module.forward = fwd
            del module.forward  # back to the class method


def gaussian_kernel(sigma: float, size: int = 3) -> torch.Tensor:
    kernel = 1
    meshgrids = torch.meshgrid([torch.arange(size, dtype=torch.float32) for _ in range(2)], indexing="ij")
    for mgrid in meshgrids:
        mean = (size - 1) / 2
        kernel = kernel * (1 / (sigma * math.sqrt(2 * math.pi)) * torch.exp(-(((mgrid - mean) / (2 * sigma)) ** 2)))
    kernel = kernel / torch.sum(kernel)
    return kernel.view(1, 1, size, size)


def max_attention_per_index(maps, indices, grid, last_idx, smooth=True, sigma=0.5):
    h, w = grid
    cat = torch.cat([m.reshape(1, -1, h, w, m.shape[-1])[0] for m in maps], dim=0)
    agg = cat.sum(0) / cat.shape[0]
    text = agg[:, :, 1:last_idx].clone()
    text = text * 100
    text = F.softmax(text, dim=-1)
    out = []
    for i in [j - 1 for j in indices]:
        image = text[:, :, i]
        if smooth:
            inp = F.pad(image.unsqueeze(0).unsqueeze(0), (1, 1, 1, 1), mode="reflect")
            image = F.conv2d(inp, gaussian_kernel(sigma)).squeeze(0).squeeze(0)
        out.append(image.max())
    return out


def compute_loss(maxes):
    losses = [max(0, 1.0 - m) for m in maxes]
    return max(losses)


def forward_and_scores(unet, latents, t, context, indices, grid, last_idx, sigma=0.5, smooth=True):
    store = Store()
    with explicit_attention(unet, store, grid[0] * grid[1]):
        unet(latents, torch.full((1,), t), context=context)
    return max_attention_per_index(store.maps, indices, grid, last_idx, smooth, sigma)


def update_latent(latents, loss, step_size):
    grad = torch.autograd.grad(loss.requires_grad_(True), [latents], retain_graph=True)[0]
    return latents - step_size * grad


def reference_step(
    unet, latents, t, context, indices, grid, last_idx, step_size, threshold=None, max_refine=20, sigma=0.5, smooth=True
):
    """One altered step of the reference pipeline for one image; returns (latents, scores, iterations)."""
    with torch.enable_grad():
        latents = latents.clone().detach().requires_grad_(True)
        maxes = forward_and_scores(unet, latents, t, context, indices, grid, last_idx, sigma, smooth)
        loss = compute_loss(maxes)
        iterations = 0
        if threshold is not None and loss > 1.0 - threshold:
            target = max(0, 1.0 - threshold)
            while loss > target:
                iterations += 1
                latents = latents.clone().detach().requires_grad_(True)
                maxes = forward_and_scores(unet, latents, t, context, indices, grid, last_idx, sigma, smooth)
                loss = compute_loss(maxes)
                if loss != 0:
                    latents = update_latent(latents, loss, step_size)
                with torch.no_grad():  # the reference's two unused passes
                    unet(latents, torch.full((1,), t), context=context)
                    unet(latents, torch.full((1,), t), context=context)
                if iterations >= max_refine:
                    break
            latents = latents.clone().detach().requires_grad_(True)
            maxes = forward_and_scores(unet, latents, t, context, indices, grid, last_idx, sigma, smooth)
            loss = compute_loss(maxes)
        if loss != 0:
            latents = update_latent(latents, loss, step_size)
    return latents.detach(), [float(m) for m in maxes], iterations
