"""ae_lib.autograd: the pass gets a gradient in every host's grad mode, from what the tensors are; never a silent 0."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, AttendExcite, ImageTarget, Schedule, TokenRule, text_columns
from ae_lib.autograd import adds_residuals_in_place, grad_scope, has_inference_tensors
from ae_lib.engine import NoGradientError

COLS = tuple(text_columns(prompt_columns("a cat and a frog"), TokenRule.REFERENCE))
TARGET = [ImageTarget((2, 5), COLS)]


def _engine(unet: nn.Module, **values) -> AttendExcite:
    params = AEParams(enabled=True, subjects="x", **values)
    return AttendExcite(unet, params, Schedule.from_params(params, 50))


def _inference_copy(unet: nn.Module) -> nn.Module:
    """The UNet as Forge/Classic/Neo/ComfyUI hold it: built and loaded under inference mode."""
    clone = copy.deepcopy(unet)
    with torch.inference_mode():
        for m in clone.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    m._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=False)
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = b.clone()
    assert has_inference_tensors(clone)
    return clone


def test_step_under_inference_mode_equals_the_plain_step(sd1_unet):
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    ctx = make_context(1)
    plain = _engine(sd1_unet).step(1, z, cond_runner(sd1_unet, ctx), TARGET)
    unet = _inference_copy(sd1_unet)
    pointers = [p.data_ptr() for p in unet.parameters()]
    with torch.inference_mode(), grad_scope(unet):
        moved = _engine(unet).step(1, z.clone(), cond_runner(unet, ctx), TARGET)
    assert torch.allclose(moved.latent, plain.latent, atol=1e-6) and not torch.equal(moved.latent, z)
    assert moved.scores[0] == pytest.approx(plain.scores[0], abs=1e-6)
    assert [p.data_ptr() for p in unet.parameters()] == pointers  # zero-copy, originals back
    assert all(p.is_inference() for p in unet.parameters())


def test_inference_mode_without_the_scope_is_an_error_not_a_zero_update(sd1_unet):
    unet = _inference_copy(sd1_unet)
    with torch.inference_mode(), pytest.raises(NoGradientError, match="recorded no gradient"):
        _engine(unet).step(1, torch.randn(1, 4, 16, 16), cond_runner(unet, make_context(1)), TARGET)


def test_attention_that_ignores_the_latent_is_an_error_at_nonzero_step_size(sd1_unet):
    run = cond_runner(sd1_unet, make_context(1))

    def blind(z_rows, rows):  # the attention no longer depends on z: its gradient is exactly 0
        return run(z_rows * 0 + z_rows.detach(), rows)

    z = torch.randn(1, 4, 16, 16)
    with pytest.raises(NoGradientError, match="exactly zero"):
        _engine(sd1_unet, max_refine=0).step(1, z, blind, TARGET)
    still = _engine(sd1_unet, step_size=0.0, max_refine=0).step(1, z, blind, TARGET)
    assert torch.equal(still.latent, z)  # step size 0 asks for no move: no error


class _InPlaceBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.attn2 = nn.LayerNorm(4), nn.Linear(4, 4)

    def forward(self, x):
        n = self.attn2(self.norm1(x))
        x += n
        return x


class _OutOfPlaceBlock(_InPlaceBlock):
    def forward(self, x):
        return self.attn2(self.norm1(x)) + x


def test_in_place_residuals_are_read_from_the_block_source(sd1_unet):
    assert adds_residuals_in_place(nn.Sequential(_InPlaceBlock()))
    assert not adds_residuals_in_place(nn.Sequential(_OutOfPlaceBlock()))
    assert not adds_residuals_in_place(sd1_unet)  # ldm: x = attn(norm(x)) + x


def test_in_place_block_needs_the_norm_clones():
    block = _InPlaceBlock()
    x = torch.randn(2, 4, requires_grad=True)
    with grad_scope(block, clone_norms=False), pytest.raises(RuntimeError, match="inplace"):
        block(x.clone() * 1).sum().backward()
    with grad_scope(block):
        block(x.clone() * 1).sum().backward()
    assert x.grad is not None and not block.norm1._forward_pre_hooks
