"""An independent, plain implementation of CONFORM's step (official code gemlab-vt/CONFORM, pipeline_conform.py,
MIT), for one image at a time, written the way that code is structured, not the way ae_lib is.

- The attention: every attn2 module's forward replaced for the whole pass (tests/reference_ae.py), the maps of the
  target size concatenated over (layer, head) and averaged (AttentionStore.aggregate_attention).
- `_compute_contrastive_loss` with the authors' notebook settings (loss "ntxent", temperature 0.5, smoothing on,
  softmax_normalize=False, softmax_normalize_attention_maps=False): text slice [1:-1], each token's map smoothed
  (reflect pad, GaussianSmoothing), flattened; classes from the groups' dict; with the previous step's maps, each
  token's previous map follows it with the same class.
- NT-Xent as pytorch_metric_learning 2.x computes it (NTXentLoss, GenericPairLoss.pair_based_loss,
  get_all_pairs_indices, CosineSimilarity, MeanReducer), pair by pair.
- The denoising loop's A&C part: forward, loss, refinement (`_perform_iterative_refinement_step`: a fixed number
  of iterations, each a forward at the current latent, then one final forward), `if loss != 0` update; the
  previous maps for the next step are the aggregate of the last A&C forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.reference_ae import Store, explicit_attention, gaussian_kernel


def aggregate(unet, latents, t, context, grid):
    store = Store()
    with explicit_attention(unet, store, grid[0] * grid[1]):
        unet(latents, torch.full((1,), t), context=context)
    h, w = grid
    out = torch.cat([m.reshape(-1, h, w, m.shape[-1]) for m in store.maps], dim=0)
    return out.sum(0) / out.shape[0]


def _smoothed(image, sigma):
    inp = F.pad(image.unsqueeze(0).unsqueeze(0), (1, 1, 1, 1), mode="reflect")
    return F.conv2d(inp, gaussian_kernel(sigma).to(image.dtype)).squeeze(0).squeeze(0)


def ntxent_pml(embeddings, labels, temperature):
    """pytorch_metric_learning's NTXentLoss(temperature)(embeddings, labels)."""
    matches = (labels.unsqueeze(1) == labels.unsqueeze(0)).byte()
    diffs = matches ^ 1
    matches.fill_diagonal_(0)
    a1, p = torch.where(matches)
    a2, n = torch.where(diffs)
    if all(len(x) <= 1 for x in (a1, p, a2, n)):
        return torch.sum(embeddings * 0)
    normed = F.normalize(embeddings, p=2, dim=1)
    mat = torch.matmul(normed, normed.t())
    pos_pairs, neg_pairs = mat[a1, p], mat[a2, n]
    if not (len(a1) > 0 and len(a2) > 0):
        return torch.sum(embeddings * 0)
    dtype = neg_pairs.dtype
    pos_pairs = pos_pairs.unsqueeze(1) / temperature
    neg_pairs = neg_pairs / temperature
    n_per_p = (a2.unsqueeze(0) == a1.unsqueeze(1)).to(dtype)
    neg_pairs = neg_pairs * n_per_p
    neg_pairs[n_per_p == 0] = torch.finfo(dtype).min
    max_val = torch.max(pos_pairs, torch.max(neg_pairs, dim=1, keepdim=True)[0]).detach()
    numerator = torch.exp(pos_pairs - max_val).squeeze(1)
    denominator = torch.sum(torch.exp(neg_pairs - max_val), dim=1) + numerator
    log_exp = torch.log((numerator / denominator) + torch.finfo(dtype).tiny)
    return torch.mean(-log_exp)


def contrastive_loss(attention_maps, attention_maps_t_plus_one, token_groups, temperature=0.5, sigma=0.5):
    attention_for_text = attention_maps[:, :, 1:-1]
    prev = None if attention_maps_t_plus_one is None else attention_maps_t_plus_one[:, :, 1:-1]
    indices_to_classes = {}
    for c, group in enumerate(token_groups):
        for obj in group:
            indices_to_classes[obj] = c
    classes, embeddings = [], []
    for ind, c in indices_to_classes.items():
        classes.append(c)
        embeddings.append(_smoothed(attention_for_text[:, :, ind - 1], sigma).view(-1))
        if prev is not None:
            classes.append(c)
            embeddings.append(_smoothed(prev[:, :, ind - 1], sigma).view(-1))
    return ntxent_pml(torch.stack(embeddings, dim=0), torch.tensor(classes), temperature)


def update_latent(latents, loss, step_size):
    grad = torch.autograd.grad(loss.requires_grad_(True), [latents], retain_graph=True)[0]
    return latents - step_size * grad


def conform_step(unet, latents, t, context, token_groups, grid, step_size, previous, refinement_steps=0):
    """One altered step for one image: (latents, loss, the next step's previous maps)."""
    with torch.enable_grad():
        latents = latents.clone().detach().requires_grad_(True)
        maps = aggregate(unet, latents, t, context, grid)
        loss = contrastive_loss(maps, previous, token_groups)
        if refinement_steps:
            for _ in range(refinement_steps):
                latents = latents.clone().detach().requires_grad_(True)
                maps = aggregate(unet, latents, t, context, grid)
                loss = contrastive_loss(maps, previous, token_groups)
                if loss != 0:
                    latents = update_latent(latents, loss, step_size)
            latents = latents.clone().detach().requires_grad_(True)
            maps = aggregate(unet, latents, t, context, grid)
            loss = contrastive_loss(maps, previous, token_groups)
        if loss != 0:
            latents = update_latent(latents, loss, step_size)
    return latents.detach(), float(loss), maps.detach()
