"""An independent, plain implementation of Divide & Bind's step (official code boschresearch/Divide-and-Bind,
divide_and_bind/pipeline_divide_and_bind_latest.py, loss mode "tv_bind"; AGPL: written here from its formulas),
for one image at a time, structured the way that code is, not the way ae_lib is.

- The attention: every attn2 module's forward replaced for the whole pass; each cross-attention probability map
  with at most max_res**2 queries is stored under its place in the UNet (down / mid / up), the UNet runs to the end.
- `aggregate(res)`: the maps with res**2 queries, from up, down then mid, concatenated over (layer, head), averaged.
  `aggregate_intermediate(res, from_res)`: the maps of the finer resolutions, each nearest-interpolated to res x res,
  concatenated and averaged the same way.
- The loss: text slice [1:-1] of both, x100, softmax over the text; per subject its smoothed map, its TV through
  torch.nn.L1Loss on the code's two slice pairs (the second broadcasts the last row), and, when it has an attribute,
  the attribute's smoothed fine map rescaled to the subject's max, both softmaxed over the pixels, cut at a quantile
  of the subject's max, JSD through torch.nn.KLDivLoss(batchmean, log_target=True), weighted by the step's
  coefficient; per-token loss -(tv - bind), the image's loss the torch.max of them; the threshold indicator the min
  TV.
- The step: forward, loss; at a threshold step whose indicator is below the threshold, the refinement loop (each
  iteration a forward at the current latent, an update when the loss is not 0, the indicator from that forward,
  the limit), one final forward; then the update when the loss is not 0.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange

from tests.reference_ae import gaussian_kernel


class PlacedStore:
    def __init__(self, max_res: int) -> None:
        self.max_res = max_res
        self.maps: dict[str, list[torch.Tensor]] = {"down": [], "mid": [], "up": []}


def _place(name: str) -> str | None:
    for prefix, place in (("input_blocks", "down"), ("middle_block", "mid"), ("output_blocks", "up")):
        if name.startswith(prefix):
            return place
    return None


@contextmanager
def placed_attention(unet, store: PlacedStore):
    originals = {}

    def make_forward(module, place):
        def forward(x, context=None, mask=None):
            h = module.heads
            is_cross = context is not None
            context = x if context is None else context
            q, k, v = module.to_q(x), module.to_k(context), module.to_v(context)
            q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=h) for t in (q, k, v))
            probs = (torch.einsum("b i d, b j d -> b i j", q, k) * module.scale).softmax(dim=-1)
            if is_cross and probs.shape[1] <= store.max_res**2:
                store.maps[place].append(probs)
            out = torch.einsum("b i j, b j d -> b i d", probs, v)
            return module.to_out(rearrange(out, "(b h) n d -> b n (h d)", h=h))

        return forward

    for name, module in unet.named_modules():
        if name.endswith("attn2") and _place(name) is not None:
            originals[module] = module.forward
            module.forward = make_forward(module, _place(name))
    try:
        yield
    finally:
        for module in originals:
            del module.forward  # back to the class method


def aggregate(store: PlacedStore, res: int) -> torch.Tensor:
    out = [m.reshape(-1, res, res, m.shape[-1]) for where in ("up", "down", "mid") for m in store.maps[where]
           if m.shape[1] == res**2]
    cat = torch.cat(out, dim=0)
    return cat.sum(0) / cat.shape[0]


def aggregate_intermediate(store: PlacedStore, res: int, from_res: tuple[int, ...]) -> torch.Tensor:
    out = []
    for where in ("up", "down", "mid"):
        for m in store.maps[where]:
            if m.shape[1] in [r**2 for r in from_res]:
                r = int(math.sqrt(m.shape[1]))
                maps = rearrange(m.reshape(-1, r, r, m.shape[-1]), "b h w c -> b c h w")
                maps = F.interpolate(maps, size=(res, res), mode="nearest")
                out.append(rearrange(maps, "b c h w -> b h w c"))
    cat = torch.cat(out, dim=0)
    return cat.sum(0) / cat.shape[0]


def _smooth(image: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    padded = F.pad(image.unsqueeze(0).unsqueeze(0), (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, gaussian_kernel(sigma).to(image.dtype)).squeeze(0).squeeze(0)


def _tv(image: torch.Tensor) -> torch.Tensor:
    l1 = torch.nn.L1Loss()
    with warnings.catch_warnings():  # the code's second pair broadcasts (a (1, w) row against (h-1, w))
        warnings.simplefilter("ignore")
        return l1(image[:, :-1], image[:, 1:]) + l1(image[-1:, :], image[1:, :])


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    kl = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)
    p, q = p.view(1, -1), q.view(1, -1)
    log_mean = (0.5 * (p + q)).log()
    return 0.5 * (kl(log_mean, p.log()) + kl(log_mean, q.log()))


def coefficient(step: int) -> float:
    return 1.0 if step < 10 else 5.0 if step < 20 else 10.0


def tv_bind_loss(maps, fine_maps, indices, color_indices, step):
    """(loss, threshold indicator, per-subject TV) of the code's tv_bind mode."""
    text = F.softmax(maps[:, :, 1:-1] * 100, dim=-1)
    colour_text = F.softmax(fine_maps[:, :, 1:-1] * 100, dim=-1)
    per_token, tvs = [], []
    for j, index in enumerate(indices):
        image = _smooth(text[:, :, index - 1])
        tv = _tv(image)
        value = tv
        if color_indices is not None and color_indices[j] - 1 >= 0:
            colour = _smooth(colour_text[:, :, color_indices[j] - 1])
            subject_p = F.softmax(image.view(-1), dim=0)
            colour_q = F.softmax((colour / colour.max() * image.max()).view(-1), dim=0)
            quantile = 0.3 if tv < 0.1 else 0.2
            cut_subject = quantile * subject_p.max()
            cut_colour = quantile * subject_p.max()  # the code cuts the attribute at the subject's max too
            subject_p = F.relu(subject_p - cut_subject) + 1e-5
            colour_q = F.relu(colour_q - cut_colour) + 1e-5
            value = value - coefficient(step) * js_divergence(subject_p, colour_q)
        per_token.append(value)
        tvs.append(tv)
    losses = torch.stack([0.0 - v for v in per_token])
    tvs = torch.stack(tvs)
    return torch.max(losses), tvs.min(), tvs


def forward_loss(unet, latents, t, context, indices, color_indices, res, step):
    store = PlacedStore(max_res=res * 4)
    with placed_attention(unet, store):
        unet(latents, torch.full((1,), t), context=context)
    maps = aggregate(store, res)
    fine = aggregate_intermediate(store, res, (res * 4, res * 2))
    return tv_bind_loss(maps, fine, indices, color_indices, step)


def update_latent(latents, loss, step_size):
    grad = torch.autograd.grad(loss.requires_grad_(True), [latents], retain_graph=True)[0]
    return latents - step_size * grad


def divide_bind_step(unet, latents, t, context, indices, color_indices, res, step, step_size, threshold=None,
                     max_refine=50, max_refine_first=100):
    """One altered step for one image: (latents, loss, per-subject TV, refinement iterations)."""
    with torch.enable_grad():
        latents = latents.clone().detach().requires_grad_(True)
        loss, indicator, tvs = forward_loss(unet, latents, t, context, indices, color_indices, res, step)
        iterations = 0
        if threshold is not None and indicator < threshold:
            while indicator < threshold:
                iterations += 1
                latents = latents.detach().requires_grad_(True)
                loss, indicator, tvs = forward_loss(unet, latents, t, context, indices, color_indices, res, step)
                if loss != 0:
                    latents = update_latent(latents, loss, step_size)
                if iterations >= (max_refine_first if step == 0 else max_refine):
                    break
            latents = latents.detach().requires_grad_(True)
            loss, indicator, tvs = forward_loss(unet, latents, t, context, indices, color_indices, res, step)
        if loss != 0:
            latents = update_latent(latents, loss, step_size)
    return latents.detach(), float(loss.detach()), [float(v) for v in tvs], iterations
