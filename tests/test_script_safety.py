"""Errors, interrupts and refusals: the image is still made and nothing stays patched."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from modules import processing, scripts, sd_unet, shared
from modules.infotext_utils import parse_generation_parameters
from PIL import Image

from ae_webui import session as session_module
from tests import webui_host as host
from tests.webui_host import ae, model_state, run_txt2img


@pytest.fixture(autouse=True)
def _host():
    host.start()


@pytest.fixture
def samplers_seen(monkeypatch):
    """Every sampler A&E installed on, to check its CFG denoiser has no hook left afterwards."""
    seen = []
    original = session_module.Session.__init__

    def spy(self, p, *args, **kwargs):
        seen.append(p.sampler)
        original(self, p, *args, **kwargs)

    monkeypatch.setattr(session_module.Session, "__init__", spy)
    return seen


def _no_hooks_left(samplers):
    return all(not s.model_wrap_cfg._forward_pre_hooks for s in samplers)


def test_plain_generation_after_ae_is_bit_identical():
    before, _ = run_txt2img(None, seed=7)
    run_txt2img(ae(), seed=7)
    after, _ = run_txt2img(None, seed=7)
    assert torch.equal(before.latents, after.latents)


def test_exception_inside_the_ae_pass(samplers_seen):
    state = model_state()
    unet = shared.sd_model.model.diffusion_model

    def boom(module, args):
        if torch.is_grad_enabled():  # only the A&E pass runs with grad
            raise RuntimeError("simulated CUDA out of memory")

    handle = unet.input_blocks[4].register_forward_pre_hook(boom)
    try:
        processed, _ = run_txt2img(ae())
    finally:
        handle.remove()
    info = parse_generation_parameters(processed.infotexts[0])
    assert "simulated CUDA out of memory" in info["AE error"] and processed.images
    assert torch.isfinite(processed.latents).all()
    assert model_state() == state
    assert samplers_seen and _no_hooks_left(samplers_seen)


def test_interrupt_during_refinement(samplers_seen, monkeypatch):
    state = model_state()
    refinements = []

    def interrupt(self, iteration, limit):
        refinements.append(iteration)
        shared.state.interrupted = True

    monkeypatch.setattr(session_module.Session, "_progress", interrupt)
    processed, _ = run_txt2img(ae(max_refine=20))
    assert refinements == [1], "refinement stops at the first check after the interrupt"
    assert processed.images
    assert model_state() == state and _no_hooks_left(samplers_seen)


class _ReplacementUnet:
    """Like a TensorRT SdUnet: runs the UNet's computation elsewhere, so no attention module is called."""

    def __init__(self, unet):
        self.unet = unet

    def forward(self, x, timesteps, context, *args, **kwargs):
        return torch.zeros_like(x)


def test_replacement_unet_stands_down(monkeypatch):
    monkeypatch.setattr(sd_unet, "current_unet", _ReplacementUnet(shared.sd_model.model.diffusion_model))
    processed, _ = run_txt2img(ae(), steps=4)
    assert "replacement UNet" in parse_generation_parameters(processed.infotexts[0])["AE error"]
    assert processed.images


def test_lowvram_stands_down_but_medvram_does_not(monkeypatch):
    monkeypatch.setattr(shared.cmd_opts, "lowvram", True)
    processed, _ = run_txt2img(ae(), steps=4)
    assert "--lowvram" in parse_generation_parameters(processed.infotexts[0])["AE error"]
    monkeypatch.setattr(shared.cmd_opts, "lowvram", False)
    monkeypatch.setattr(shared.cmd_opts, "medvram", True)
    processed, _ = run_txt2img(ae(), steps=4)
    assert "AE error" not in parse_generation_parameters(processed.infotexts[0])


@pytest.mark.parametrize("change", ["new model object", "new weights in the same object"])
def test_model_change_mid_run_stands_down(monkeypatch, change):
    original = session_module.Session._step
    switched = []

    def switch_model(self, denoiser, args, kwargs):
        if denoiser.step == 1 and not switched:
            switched.append(True)
            if change == "new model object":  # what reload_model_weights does for another architecture
                monkeypatch.setattr(shared, "sd_model", object())
            else:  # same architecture: weights loaded into the same object, with a new checkpoint info
                monkeypatch.setattr(shared.sd_model, "sd_checkpoint_info", SimpleNamespace(title="refiner"))
            original(self, denoiser, args, kwargs)
            monkeypatch.undo()
            return None
        return original(self, denoiser, args, kwargs)

    monkeypatch.setattr(session_module.Session, "_step", switch_model)
    processed, _ = run_txt2img(ae(), steps=6)
    assert "the model changed during sampling" in parse_generation_parameters(processed.infotexts[0])["AE error"]


def test_img2img_reuses_one_sampler_and_leaves_nothing(samplers_seen):
    runner = scripts.scripts_img2img
    args = [0, *[c.value for c in runner.inputs[1:]]]
    ext = host.script(runner)
    args[ext.args_from : ext.args_to] = host.ae_args(ae())
    p = processing.StableDiffusionProcessingImg2Img(
        sd_model=shared.sd_model, prompt="a cat and a frog", init_images=[Image.new("RGB", (128, 128), "gray")],
        denoising_strength=0.75, steps=8, width=128, height=128, sampler_name="Euler", seed=2, n_iter=2,
    )
    p.scripts = runner
    p.script_args = tuple(args)
    processed = processing.process_images(p)
    infos = [parse_generation_parameters(t) for t in processed.infotexts]
    assert all("AE scores" in i and "AE error" not in i for i in infos)
    assert len({id(s) for s in samplers_seen}) == 1 and len(samplers_seen) == 2  # one sampler, one install per batch
    assert _no_hooks_left(samplers_seen)


def test_attention_maps_are_saved_and_added_after_the_images(monkeypatch):
    from modules import images

    saved = []
    monkeypatch.setattr(images, "save_image", lambda image, *a, **k: saved.append((image.size, k.get("suffix"))))
    processed, _ = run_txt2img(ae(save_maps=True), steps=4, batch_size=2, prompt="a cat and a frog")
    grids = processed.images[-2:]
    assert len(saved) == 2 and all(suffix == "-attention" for _, suffix in saved)
    assert all(g.size[0] >= 2 * 128 and g.size[1] >= 2 * 128 for g in grids)  # 2 subjects x 2 time points
    assert len(processed.images) == len(processed.infotexts)
    plain, _ = run_txt2img(ae(), steps=4)
    assert len(plain.images) == 1, "no maps unless asked"


def test_checkpointing_setting_gives_the_same_image(monkeypatch):
    from ae_webui import settings

    assert shared.opts.data_labels[settings.CHECKPOINTING].default is False
    normal, _ = run_txt2img(ae(), steps=4)
    monkeypatch.setitem(shared.opts.data, settings.CHECKPOINTING, True)
    state = model_state()
    low_memory, _ = run_txt2img(ae(), steps=4)
    torch.testing.assert_close(low_memory.latents, normal.latents, rtol=1e-4, atol=1e-5)
    assert model_state() == state
