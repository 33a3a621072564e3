"""The script in hosts that sample under inference mode (Forge Classic, Neo) and serialise without `default=`."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest
import torch
from modules import shared
from modules.infotext_utils import parse_generation_parameters

from ae_webui import hosts
from ae_webui import session as session_module
from tests import webui_host as host
from tests.test_autograd_scope import _inference_copy
from tests.webui_host import ae, model_state, run_txt2img


@pytest.fixture(autouse=True)
def _host():
    host.start()


@pytest.fixture
def inference_host():
    """Classic's way: weights loaded under inference mode and the whole generation run inside it."""
    model = shared.sd_model.model
    original = model.diffusion_model  # (monkeypatch would delete a submodule on undo: it is not in __dict__)
    model.diffusion_model = _inference_copy(original)

    def run(params, **fields):
        with torch.inference_mode():
            return run_txt2img(params, **fields)

    try:
        yield run
    finally:
        model.diffusion_model = original


def test_ae_moves_the_latent_under_inference_mode(inference_host):
    state = model_state()
    plain, _ = inference_host(None, seed=4)
    moved, _ = inference_host(ae(), seed=4)
    info = parse_generation_parameters(moved.infotexts[0])
    assert "AE error" not in info and info["AE scores"].startswith("cat 0.")
    assert not torch.equal(plain.latents, moved.latents)
    assert model_state() == state


def test_a_pass_that_records_no_gradient_is_reported(inference_host, monkeypatch):
    """With the host's grad scope gone the pass runs inside inference mode: an error, not a quiet no-op."""
    monkeypatch.setattr(type(hosts.current()), "grad_scope", lambda self, unet: contextlib.nullcontext())
    plain, _ = inference_host(None, seed=4)
    processed, _ = inference_host(ae(), seed=4)
    info = parse_generation_parameters(processed.infotexts[0])
    assert "recorded no gradient" in info["AE error"] and processed.images
    assert torch.equal(plain.latents, processed.latents)


def test_generation_params_serialise_without_a_default():
    """Forge Classic's Processed.js() calls json.dumps(obj) with no `default=`: plain values only."""
    processed, _ = run_txt2img(ae(), batch_size=2, seed=5)
    text = json.dumps(processed.extra_generation_params)
    first = parse_generation_parameters(processed.infotexts[0])
    assert json.loads(text)["AE scores"] == first["AE scores"]
    assert "AE error" not in json.loads(text)
    assert all("AE scores" in i for i in processed.infotexts)


def test_a_run_in_which_the_hook_never_fires_is_reported(monkeypatch):
    """A host or extension that calls the denoiser without its hooks: A&E says it did not act."""
    original = session_module.Session.__init__

    def unhooked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.handle.remove()  # as if the sampler never went through the CFG denoiser's __call__

    monkeypatch.setattr(session_module.Session, "__init__", unhooked)
    processed, _ = run_txt2img(ae(), steps=4)
    info = parse_generation_parameters(processed.infotexts[0])
    assert "A&E did not act" in info["AE error"] and "AE scores" not in info
    monkeypatch.undo()
    processed, _ = run_txt2img(ae(), steps=4)
    assert "AE error" not in parse_generation_parameters(processed.infotexts[0])


@pytest.mark.parametrize(("options", "expected"), [
    ({"transformer_options": {"patches_replace": {"attn2": {("input", 4): object()}}}}, "replaces the UNet's cross"),
    ({"model_function_wrapper": lambda f, args: f(args["input"], args["timestep"], **args["c"])}, "wraps the UNet"),
])
def test_classic_style_unet_patcher_options_are_refused(monkeypatch, options, expected):
    """Forge Classic keeps A1111's model and samples through `forge_objects.unet`: its patches are checked too."""
    patcher = SimpleNamespace(model_options=options)
    monkeypatch.setattr(shared.sd_model, "forge_objects", SimpleNamespace(unet=patcher), raising=False)
    processed, _ = run_txt2img(ae(), steps=4)
    assert expected in parse_generation_parameters(processed.infotexts[0])["AE error"] and processed.images
    patcher.model_options = {}
    processed, _ = run_txt2img(ae(), steps=4)
    assert "AE error" not in parse_generation_parameters(processed.infotexts[0])
