"""Attention capture: exact probabilities, layer choice by query count, hooks only during a pass."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange
from ldm.modules.diffusionmodules import openaimodel

from ae_demo.tiny import make_context
from ae_lib.capture import (
    AttentionCapture,
    attention_grids,
    attention_res_problem,
    find_cross_attention,
    grid_candidates,
    target_grid,
)


def _independent_probs(module, x, context):
    h = module.heads
    q = rearrange(module.to_q(x), "b n (h d) -> b h n d", h=h)
    k = rearrange(module.to_k(context), "b n (h d) -> b h n d", h=h)
    return torch.einsum("bhid,bhjd->bhij", q, k).mul(module.scale).softmax(-1)


class _InterpolatingCat:
    """Like the WebUI's TorchHijackForUnet (modules/sd_hijack_unet.py): odd sizes make skip connections
    one pixel off, and the WebUI interpolates before concatenating."""

    def __getattr__(self, item):
        return getattr(torch, item)

    @staticmethod
    def cat(tensors, *args, **kwargs):
        a, b = tensors
        if a.shape[-2:] != b.shape[-2:]:
            a = torch.nn.functional.interpolate(a, b.shape[-2:], mode="nearest")
        return torch.cat([a, b], *args, **kwargs)


def _module_state(unet):
    return [
        (
            name,
            type(m),
            dict(m._forward_hooks),
            dict(m._forward_pre_hooks),
            dict(m._forward_hooks_with_kwargs),
            "forward" in m.__dict__,
        )
        for name, m in unet.named_modules()
    ] + [(n, p.requires_grad) for n, p in unet.named_parameters()]


def test_captured_probs_equal_independent_softmax(unet):
    z = torch.randn(2, 4, 16, 16)
    ctx = make_context(2)
    inputs = {}
    handles = [
        m.register_forward_pre_hook(
            lambda mod, args, kwargs, n=n: inputs.__setitem__(n, (args[0], kwargs["context"])), with_kwargs=True
        )
        for n, m in find_cross_attention(unet)
    ]
    capture = AttentionCapture(unet, truncate=False)
    try:
        with capture.recording(16) as rec:
            unet(z, torch.full((2,), 10.0), context=ctx)
    finally:
        for h in handles:
            h.remove()
    modules = dict(find_cross_attention(unet))
    expected_layers = [n for n, (x, _) in inputs.items() if x.shape[1] == 16]
    assert rec.layers == expected_layers and len(expected_layers) == 5  # input 7, 8 and output 3, 4, 5
    expected_sum = sum(_independent_probs(modules[n], *inputs[n]).sum(1) for n in expected_layers)
    heads = sum(modules[n].heads for n in expected_layers)
    torch.testing.assert_close(rec.mean(), expected_sum / heads, rtol=1e-5, atol=1e-7)
    assert rec.mean().requires_grad is False or rec.mean().grad_fn is not None


@pytest.mark.parametrize(("hw", "expected"), [((16, 16), (4, 4)), ((20, 12), (5, 3)), ((9, 7), (3, 2))])
def test_layers_chosen_by_query_count_with_ceil_sizes(sd1_unet, hw, expected, monkeypatch):
    assert target_grid(hw) == expected
    monkeypatch.setattr(openaimodel, "th", _InterpolatingCat())
    capture = AttentionCapture(sd1_unet, truncate=False)
    with capture.recording(expected[0] * expected[1]) as rec:
        sd1_unet(torch.randn(1, 4, *hw), torch.full((1,), 10.0), context=make_context(1))
    assert [n.split(".1.transformer")[0] for n in rec.layers] == [
        "input_blocks.7",
        "input_blocks.8",
        "output_blocks.3",
        "output_blocks.4",
        "output_blocks.5",
    ]


def test_attention_res_override_and_error():
    assert target_grid((64, 64), 16) == (16, 16)
    assert target_grid((64, 64), 32) == (32, 32)
    assert grid_candidates(64, 48)[:3] == [(64, 48), (32, 24), (16, 12)]
    with pytest.raises(ValueError, match="matches no downsampling level of a 64x64 latent"):
        target_grid((64, 64), 20)


def _sdxl_like() -> torch.nn.Module:
    """SDXL's layout in the real ldm class: three levels, cross-attention only at the 2nd and 3rd (and middle)."""
    torch.manual_seed(0)
    return openaimodel.UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=32,
                                 attention_resolutions=[2, 4], num_res_blocks=2, channel_mult=(1, 2, 4),
                                 num_head_channels=16, use_spatial_transformer=True, use_linear_in_transformer=True,
                                 transformer_depth=1, context_dim=32, legacy=False).eval()


def _queries_seen(unet, hw) -> dict[str, int]:
    seen = {}
    handles = [m.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, args[0].shape[1]))
               for n, m in find_cross_attention(unet)]
    try:
        with torch.no_grad():
            unet(torch.randn(1, 4, *hw), torch.full((1,), 10.0), context=make_context(1))
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("hw", [(16, 16), (32, 24), (9, 7)])
@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_attention_grids_are_the_grids_the_layers_run_at(sd1_unet, kind, hw, monkeypatch):
    """From the model's structure, per layer: the query count a real forward gives every attn2 layer."""
    monkeypatch.setattr(openaimodel, "th", _InterpolatingCat())
    unet = sd1_unet if kind == "sd1" else _sdxl_like()
    grids = attention_grids(unet, hw)
    seen = _queries_seen(unet, hw)
    assert set(grids) == set(seen)
    assert {n: h * w for n, (h, w) in grids.items()} == seen
    heights = sorted({h for h, _ in grids.values()}, reverse=True)
    expected = {("sd1", (16, 16)): [16, 8, 4, 2], ("sdxl", (16, 16)): [8, 4], ("sd1", (32, 24)): [32, 16, 8, 4],
                ("sdxl", (32, 24)): [16, 8], ("sd1", (9, 7)): [9, 5, 3, 2], ("sdxl", (9, 7)): [5, 3]}
    assert heights == expected[kind, hw]


def test_attention_res_problem_names_the_heights_the_layers_run_at(sd1_unet):
    """In the user's unit (the grid's height), never a height no layer runs at; auto included."""
    assert attention_res_problem(sd1_unet, (32, 32), 4) is None
    assert attention_res_problem(sd1_unet, (32, 32), 0) is None
    problem = attention_res_problem(sd1_unet, (32, 32), 2)
    assert problem.startswith("attention resolution 2 matches no cross-attention layer of this model")
    assert "its layers run at 32, 16, 8, 4 " in problem and "query" not in problem
    sdxl = _sdxl_like()
    assert "its layers run at 16, 8 " in attention_res_problem(sdxl, (32, 32), 32)
    assert attention_res_problem(sdxl, (32, 32), 0) is None  # auto = latent/4 = 8
    torch.manual_seed(0)  # attention at the latent's own size and in the middle block only: auto (latent/4) has none
    ends = openaimodel.UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=32,
                                 attention_resolutions=[1], num_res_blocks=1, channel_mult=(1, 1, 1, 1), num_heads=2,
                                 use_spatial_transformer=True, transformer_depth=1, context_dim=32, legacy=False)
    auto = attention_res_problem(ends, (32, 32), 0)
    assert auto.startswith("attention resolution 0 (auto: latent/4 = 8) matches no cross-attention layer")
    assert "its layers run at 32, 4:" in auto
    assert attention_grids(torch.nn.Sequential(torch.nn.Linear(2, 2)), (8, 8)) is None  # no attn2: unknown


def test_no_hooks_outside_a_pass_and_after_an_exception(sd1_unet):
    before = _module_state(sd1_unet)
    capture = AttentionCapture(sd1_unet)
    assert _module_state(sd1_unet) == before, "creating a capture must not touch the model"
    z, ctx = torch.randn(1, 4, 16, 16), make_context(1)
    plain = sd1_unet(z, torch.full((1,), 10.0), context=ctx)

    boom = sd1_unet.output_blocks[4].register_forward_pre_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError), capture.recording(16):
        sd1_unet(z.requires_grad_(), torch.full((1,), 10.0), context=ctx)
    boom.remove()
    assert _module_state(sd1_unet) == before
    again = sd1_unet(z.detach(), torch.full((1,), 10.0), context=ctx)
    assert torch.equal(plain, again), "an ordinary pass after capture must be bit-identical"
