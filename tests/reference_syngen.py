"""An independent, plain implementation of SynGen's step (official code RoyiRa/Linguistic-Binding-in-Diffusion-Models,
compute_loss.py and syngen_diffusion_pipeline.py; no licence, so written here from its formulas), for one image at
a time, structured the way that code is, not the way ae_lib is.

- The attention: every attn2 module's forward replaced for the whole pass (tests/reference_ae.py), the maps of the
  target size concatenated over (layer, head) and averaged (diffusers' AttentionStore.aggregate_attention over
  up, down, mid), then multiplied by 100 and split into one map per column (`_get_attention_maps_list`).
- The pairs come as the code's aligned subtrees: a list of words per subtree, the noun last; a word is a column
  index, or a list of columns when the tokenizer split it. The other words are every token of the prompt without
  its start and end (`get_attention_map_index_to_wordpiece`), here the prompt's token count.
- Divergence: torch.distributions' Categorical on each flattened map and its kl_divergence, both ways, averaged.
- Loss (`_attribution_loss`, `_calculate_losses`, `calculate_positive_loss`, `calculate_negative_loss`): per
  (noun, modifier) pair, the positive divergence (the max over split words' pieces) plus the mean of the noun's
  and the modifier's negated mean divergence from the outside words (per outside word the max over pieces).
- The step (`_syngen_step`): one forward with grad, the loss, `if loss != 0` one update with the constant step
  size. No refinement.
"""

from __future__ import annotations

import torch
import torch.distributions as dist

from tests.reference_ae import Store, explicit_attention


def attention_maps_list(unet, latents, t, context, grid):
    store = Store()
    with explicit_attention(unet, store, grid[0] * grid[1]):
        unet(latents, torch.full((1,), t), context=context)
    h, w = grid
    out = torch.cat([m.reshape(-1, h, w, m.shape[-1]) for m in store.maps], dim=0)
    maps = out.sum(0) / out.shape[0]
    maps = maps * 100
    return [maps[:, :, i] for i in range(maps.shape[2])]


def sym_kl(map1, map2):
    p = dist.Categorical(probs=map1.reshape(-1))
    q = dist.Categorical(probs=map2.reshape(-1))
    return (dist.kl_divergence(p, q) + dist.kl_divergence(q, p)) / 2


def _pieces(word):
    return word if isinstance(word, list) else [word]


def positive(maps, modifier, noun):
    return max(sym_kl(maps[s], maps[d]) for s in _pieces(modifier) for d in _pieces(noun))


def outside_terms(maps, word, outside):
    return [max(sym_kl(maps[t], maps[o]) for t in _pieces(word)) for o in outside]


def negative(maps, modifier, noun, subtree, prompt_tokens):
    inside = [c for word in subtree for c in _pieces(word)]
    outside = [i for i in range(1, prompt_tokens + 1) if i not in inside]
    if not outside:
        return 0
    noun_loss = -sum(outside_terms(maps, noun, outside)) / len(outside)
    modifier_loss = -sum(outside_terms(maps, modifier, outside)) / len(outside)
    return (modifier_loss + noun_loss) / 2


def attribution_loss(maps, subtrees, prompt_tokens):
    loss = 0
    for subtree in subtrees:
        noun, modifiers = subtree[-1], subtree[:-1]
        pos = sum(positive(maps, m, noun) for m in modifiers)
        neg = sum(negative(maps, m, noun, subtree, prompt_tokens) for m in modifiers)
        loss += pos
        loss += neg
    return loss


def syngen_step(unet, latents, t, context, subtrees, prompt_tokens, grid, step_size):
    """One altered step for one image: (updated latents, loss)."""
    with torch.enable_grad():
        latents = latents.clone().detach().requires_grad_(True)
        maps = attention_maps_list(unet, latents, t, context, grid)
        loss = attribution_loss(maps, subtrees, prompt_tokens)
        if loss != 0:
            grad = torch.autograd.grad(loss.requires_grad_(True), [latents], retain_graph=True)[0]
            latents = latents - step_size * grad
    return latents.detach(), float(loss.detach())
