"""Cost of the A&E pass: UNet calls per refinement iteration, frozen weights and checkpointing (exact, and
leaving the model as it was), bytes saved for backward. No timings here: see benchmarks/step_cost.py."""

from __future__ import annotations

import argparse
import copy
from contextlib import nullcontext

import pytest
import torch
from torch import nn

import ae_lib.engine as engine_module
from ae_demo.tiny import CONTEXT_DIM, cond_runner, make_context
from ae_lib import AEParams, AttendExcite, AttentionCapture, ImageTarget, Schedule
from ae_lib.capture import target_grid
from ae_lib.memory import checkpointed_blocks, frozen_parameters, unet_blocks
from benchmarks.step_cost import ForgeStyle, make_bench, run_model, saved_bytes
from tests.test_capture import _module_state

TEXT = tuple(range(1, 76))
GRID = target_grid((16, 16))


def _engine(unet, truncate=True, checkpoint=False, **values):
    params = AEParams(enabled=True, subjects="x", **values)
    capture = AttentionCapture(unet, truncate=truncate)
    return AttendExcite(unet, params, Schedule.from_params(params, 50), capture, checkpoint=checkpoint)


def _inputs(batch=2, seed=1):
    z = torch.randn(batch, 4, 16, 16, generator=torch.Generator().manual_seed(seed))
    targets = [ImageTarget((2, 5), TEXT), ImageTarget((5,), TEXT), ImageTarget((2, 3, 5), TEXT)][:batch]
    return z, make_context(batch), targets


def _count_calls(unet):
    calls = []
    return calls, unet.register_forward_pre_hook(lambda m, a: calls.append(1))


def test_refinement_iteration_calls_the_unet_once(sd1_unet):
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    targets = [ImageTarget((5,), TEXT), ImageTarget((2, 3, 4, 5), TEXT)]
    engine = _engine(sd1_unet, step_size=400.0, max_refine=6, thresholds="0.4:0.015")
    calls, handle = _count_calls(sd1_unet)
    at_iteration = []
    try:
        result = engine.step(
            20,
            z,
            cond_runner(sd1_unet, make_context(2, seed=3)),
            targets,
            on_refine=lambda i, n: at_iteration.append(len(calls)),
        )
    finally:
        handle.remove()
    iterations = max(result.refine_iterations.values())
    assert iterations >= 2, "the case must run several refinement iterations"
    assert len(at_iteration) == iterations
    assert [b - a for a, b in zip(at_iteration, [*at_iteration[1:], len(calls)], strict=True)] == [1] * iterations
    assert len(calls) == result.passes == 1 + iterations


def test_altered_step_without_refinement_calls_the_unet_once(sd1_unet):
    z, ctx, targets = _inputs()
    calls, handle = _count_calls(sd1_unet)
    try:
        result = _engine(sd1_unet).step(1, z, cond_runner(sd1_unet, ctx), targets)
    finally:
        handle.remove()
    assert len(calls) == result.passes == 1


@pytest.mark.parametrize("truncate", [True, False])
def test_frozen_weights_give_bit_identical_gradients(unet, truncate, monkeypatch):
    z, ctx, targets = _inputs()
    flags = []
    run = cond_runner(unet, ctx)

    def run_cond(zz, rows):
        flags.append({p.requires_grad for p in unet.parameters()})
        return run(zz, rows)

    frozen = _engine(unet, truncate).evaluate(z, [0, 1], run_cond, targets, GRID)
    monkeypatch.setattr(engine_module, "frozen_parameters", lambda module: nullcontext())  # the engine before
    as_they_come = _engine(unet, truncate).evaluate(z, [0, 1], run_cond, targets, GRID)
    assert flags == [{False}, {True}]
    assert torch.equal(frozen.grads, as_they_come.grads)
    assert frozen.losses == as_they_come.losses and frozen.scores == as_they_come.scores


@pytest.mark.parametrize("truncate", [True, False])
def test_checkpointing_gives_bit_identical_gradients(unet, truncate):
    z, ctx, targets = _inputs(3)
    plain, ckpt = _engine(unet, truncate), _engine(unet, truncate, checkpoint=True)
    for _ in range(2):  # the first truncated pass learns the layer count, later ones stop at the last target layer
        a = plain.evaluate(z, [0, 1, 2], cond_runner(unet, ctx), targets, GRID)
        b = ckpt.evaluate(z, [0, 1, 2], cond_runner(unet, ctx), targets, GRID)
        assert torch.equal(a.grads, b.grads)
        assert a.losses == b.losses and a.scores == b.scores


def _mixed_flags(unet):
    unet = copy.deepcopy(unet)
    for i, p in enumerate(unet.parameters()):
        p.requires_grad_(i % 3 != 0)  # a host's own mix of flags must come back exactly
    return unet


def _boom(module, args):
    raise RuntimeError("host error mid-pass")


@pytest.mark.parametrize("checkpoint", [False, True])
def test_model_is_unchanged_after_a_pass_and_after_errors(sd1_unet, checkpoint):
    unet = _mixed_flags(sd1_unet)
    z, ctx, targets = _inputs(1)
    probe = (z, torch.full((1,), 10.0))
    with torch.no_grad():
        expected = unet(*probe, context=ctx)
    before = _module_state(unet)
    engine = _engine(unet, checkpoint=checkpoint)
    engine.step(1, z, cond_runner(unet, ctx), targets)
    assert _module_state(unet) == before

    boom = unet.output_blocks[4].register_forward_pre_hook(_boom)  # inside the checkpointed blocks, mid-pass
    with pytest.raises(RuntimeError, match="mid-pass"):
        engine.evaluate(z, [0], cond_runner(unet, ctx), targets, GRID)
    boom.remove()
    assert _module_state(unet) == before

    with pytest.raises(ValueError):  # after the forward, before backward: a subject outside the text columns
        engine.evaluate(z, [0], cond_runner(unet, ctx), [ImageTarget((80,), TEXT)], GRID)
    assert _module_state(unet) == before
    with torch.no_grad():
        assert torch.equal(unet(*probe, context=ctx), expected)


def test_frozen_parameters_restores_each_flag_on_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[1].weight.requires_grad_(False)
    before = [p.requires_grad for p in net.parameters()]
    with pytest.raises(KeyError), frozen_parameters(net):
        assert not any(p.requires_grad for p in net.parameters())
        raise KeyError
    assert [p.requires_grad for p in net.parameters()] == before


def test_checkpointed_blocks_put_back_a_hosts_own_forward():
    blocks = [nn.Linear(2, 2), nn.Linear(2, 2)]
    own = blocks[1].forward
    blocks[1].forward = own  # a host's instance-level forward (e.g. another extension's patch)
    with checkpointed_blocks(blocks):
        assert "forward" in blocks[0].__dict__ and blocks[1].forward is not own
    assert "forward" not in blocks[0].__dict__ and blocks[1].__dict__["forward"] is own


def test_checkpointing_needs_unet_blocks():
    assert len(unet_blocks(_tiny_blocks_unet())) == 3
    with pytest.raises(ValueError, match="block lists"):
        unet_blocks(nn.Sequential(nn.Linear(2, 2)))


def _tiny_blocks_unet() -> nn.Module:
    unet = nn.Module()
    unet.input_blocks = nn.ModuleList([nn.Identity(), nn.Identity()])
    unet.middle_block = nn.Identity()
    return unet


def test_bytes_saved_for_backward_at_most_half_of_a_full_unet_backward(sd1_unet):
    bench = make_bench(sd1_unet, CONTEXT_DIM, latent=16)
    bench.refinement()  # the captures learn their layer count: steady-state passes are measured
    bench.engine_ckpt.evaluate(bench.z, bench.rows, bench.run_cond, bench.targets, bench.grid)
    saved = {name: meter.total for name, meter in saved_bytes(bench).items()}
    assert saved["ours"] < saved["truncated"] < saved["full"]
    assert saved["ours"] <= 0.5 * saved["full"]
    assert saved["ckpt"] < saved["ours"]


def test_forge_style_step_is_exact_and_leaves_the_inference_weights_in_place(sd1_unet):
    """The benchmark's Forge-style pass: the same weights as inference tensors, A&E through grad_scope."""
    bench = make_bench(sd1_unet, CONTEXT_DIM, latent=16)
    forge = ForgeStyle.of(bench)
    weights = list(forge.bench.unet.parameters())
    assert weights and all(p.is_inference() for p in weights)
    assert [p.data_ptr() for p in weights] == [p.data_ptr() for p in sd1_unet.parameters()]  # zero-copy
    assert not any(p.is_inference() for p in sd1_unet.parameters())

    with torch.no_grad():  # A1111 (no_grad) and Forge (inference_mode) plain steps compute the same numbers
        expected = sd1_unet(
            torch.cat([bench.z] * 2), torch.full((2,), 500.0), context=torch.cat([bench.uncond, bench.context])
        )
    with torch.inference_mode():
        got = forge.bench.unet(
            torch.cat([forge.bench.z] * 2),
            torch.full((2,), 500.0),
            context=torch.cat([forge.bench.uncond, forge.bench.context]),
        )
    assert torch.equal(got, expected)

    bench.ours()
    forge.ours()
    assert forge.bench.last.losses == bench.last.losses and forge.bench.last.losses[0] > 0
    assert torch.equal(forge.bench.last.latent, bench.last.latent)
    assert not torch.equal(bench.last.latent, bench.z)
    assert list(forge.bench.unet.parameters()) == weights  # the originals are back after every pass
    assert all(p.is_inference() for p in forge.bench.unet.parameters())


def test_forge_style_pass_clones_norm_inputs_and_swaps_every_tensor(sd1_unet):
    bench = make_bench(sd1_unet, CONTEXT_DIM, latent=16)
    forge = ForgeStyle.of(bench)
    forge.swap()
    assert forge.swapped == len(list(sd1_unet.parameters())) + len(list(sd1_unet.buffers()))
    norms = [m for name, m in sd1_unet.named_modules() if name.rsplit(".", 1)[-1] in ("norm1", "norm2", "norm3")]
    forge.evaluate()  # the capture learns its layer count: the passes after it are truncated
    forge.ours()
    assert len(forge.passes) == 2
    count, cloned, seconds = forge.clones(1)
    assert 0 < count < len(norms)  # truncated: the norms after the last target layer never run
    assert cloned > 0 and seconds > 0
    assert not any(m._forward_pre_hooks for m in norms)  # the clones end with the pass: plain steps clone nothing
    forge.plain()
    assert len(forge.passes) == 2


def test_quick_benchmark_prints_the_forge_style_rows(sd1_unet, capsys):
    args = argparse.Namespace(latent=16, warmup=0)
    ratios = run_model("tiny", sd1_unet, CONTEXT_DIM, args, repeats=1)
    out = capsys.readouterr().out
    for line in (
        "plain CFG step (inference mode",
        "ours in grad_scope",
        "alias swap alone (in + out,",
        "Forge-style / A1111-style: altered step",
        "Forge-style / A1111-style within each round: median",
        "norm-input clones (",
        "% of the A1111-style altered step",
        "saved for backward with the clones:",
        "Forge-style ours",
    ):
        assert line in out
    assert {"forge_altered", "forge_vs_a1111", "forge_overhead"} <= ratios.keys()
    assert all(v > 0 for v in ratios.values())
