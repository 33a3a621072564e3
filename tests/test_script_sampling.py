"""The script in the (stand-in) WebUI: the update lands in the sampler's own latent, once per step."""

from __future__ import annotations

import pytest
import torch
from modules import script_callbacks
from modules.infotext_utils import parse_generation_parameters

import ae_webui.session as session_module
from ae_lib.engine import AttendExcite
from tests import webui_host as host
from tests.webui_host import ae, run_txt2img


@pytest.fixture(autouse=True)
def _host():
    host.start()
    yield
    script_callbacks.callback_map["callbacks_cfg_denoiser"].clear()


@pytest.fixture
def engine_calls(monkeypatch):
    calls = []
    original = AttendExcite.step

    def spy(self, index, z, *args, **kwargs):
        result = original(self, index, z, *args, **kwargs)
        calls.append((index, tuple(z.shape), result is not None))
        return result

    monkeypatch.setattr(AttendExcite, "step", spy)
    return calls


def test_update_persists_in_the_samplers_latent(monkeypatch):
    plain, _ = run_txt2img(None)
    excited, _ = run_txt2img(ae())
    assert not torch.equal(plain.latents, excited.latents)

    # Same A&E step, but applied only to the tensor handed to the model (what editing params.x would do).
    deltas = []

    def record_only(x, z, z_new, sigma):
        deltas.append(((z_new - z).double() * (sigma.double() ** 2 + 1).sqrt().view(-1, 1, 1, 1)).to(x.dtype))

    def add_to_model_input(params):
        if deltas:
            params.x += deltas.pop().repeat(2, 1, 1, 1)  # cond and uncond rows of this call

    monkeypatch.setattr(session_module, "apply_model_update", record_only)
    script_callbacks.on_cfg_denoiser(add_to_model_input)
    model_input_only, _ = run_txt2img(ae())
    assert not torch.equal(model_input_only.latents, excited.latents)
    assert not torch.equal(model_input_only.latents, plain.latents)


@pytest.mark.parametrize(("sampler", "calls_per_step"), [("Euler", 1), ("Heun", 2), ("DPM++ 2M", 1), ("DDIM", 1),
                                                           ("PLMS", 1), ("DPM2", 2), ("DPM++ SDE", 2)])
def test_once_per_step_inside_the_window(engine_calls, sampler, calls_per_step):
    processed, _ = run_txt2img(ae(), sampler_name=sampler, steps=8)
    ran = [index for index, _, did in engine_calls if did]
    assert ran == sorted(set(ran)), "each schedule position gets the update at most once"
    total = 7 if sampler in ("DDIM", "PLMS") else 8  # DDIM/PLMS loop len(timesteps) - 1 times
    assert ran == list(range(round(total / 2 + 1e-9) if total % 2 == 0 else (total + 1) // 2))
    assert torch.isfinite(processed.latents).all()
    assert "AE scores: " in processed.infotexts[0] and "AE error" not in processed.infotexts[0]


def test_batch_of_two_with_different_prompts(engine_calls):
    processed, _ = run_txt2img(ae("cat, frog"), prompt=["a cat and a frog", "a dog and a frog"], batch_size=2)
    # a grid comes first when the batch has several images
    first, second = (parse_generation_parameters(t) for t in processed.infotexts[-2:])
    assert first["AE scores"].startswith("cat 0.") and ", frog 0." in first["AE scores"]
    assert "AE error" not in first
    assert "'cat' is not a word of the prompt" in second["AE error"] and "AE scores" not in second
    assert all(shape[0] == 2 for _, shape, _ in engine_calls)


def test_hires_pass_is_off_by_default_and_on_when_asked(engine_calls):
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.7,
             "hr_second_pass_steps": 6}
    run_txt2img(ae(), **hires)
    assert {shape[-1] for _, shape, _ in engine_calls} == {16}  # 128 px: 16x16 latent, first pass only
    engine_calls.clear()
    run_txt2img(ae(hires=True), **hires)
    sizes = {shape[-1] for _, shape, did in engine_calls if did}
    assert sizes == {16, 32}
    # The hires pass asks for 6 steps at denoising 0.7: setup_img2img_steps makes that int(6 / 0.7) = 8 steps of
    # which the last 6 run (t_enc = 5, start = 8 - 5 - 1 = 2); the window is i < 4, so it applies at 2 and 3.
    assert [i for i, shape, did in engine_calls if did and shape[-1] == 32] == [2, 3]


def test_console_line_at_the_end_of_the_window(monkeypatch):
    from ae_webui import session

    lines = []
    monkeypatch.setattr(session.LOG, "info", lambda msg, *a: lines.append(msg % a if a else msg))
    run_txt2img(ae(), steps=6)
    assert len(lines) == 1 and lines[0].startswith("A&E image 1: cat 0.") and "frog 0." in lines[0]


def test_an_attention_resolution_no_layer_runs_at_is_refused_before_sampling(engine_calls, monkeypatch):
    """Checked against the layers the model runs at each pass's own latent size, before sampling: the image is made
    and the reason is in its info, in the grid heights the user types (never a height no layer has)."""
    from ae_webui import state

    logged = []
    monkeypatch.setattr(state.LOG, "exception", lambda *a, **k: logged.append(a))
    plain, _ = run_txt2img(None)
    processed, _ = run_txt2img(ae(attention_res=1))  # 128 px: a 16x16 latent, levels 16, 8, 4, 2, 1; layers 16-2
    error = parse_generation_parameters(processed.infotexts[0])["AE error"]
    assert error == ("A&E is off: attention resolution 1 matches no cross-attention layer of this model for a 16x16 "
                     "latent; its layers run at 16, 8, 4, 2 (or 0 = auto)")
    assert torch.equal(processed.latents, plain.latents) and engine_calls == [] and logged == []
    # 2 runs in the first pass (16x16) but not in the hires pass (32x32: 32, 16, 8, 4): said for the hires pass
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.7,
             "hr_second_pass_steps": 6}
    processed, _ = run_txt2img(ae(attention_res=2, hires=True), **hires)
    info = parse_generation_parameters(processed.infotexts[0])
    assert "for a 32x32 latent; its layers run at 32, 16, 8, 4" in info["AE error"] and info["AE scores"]
    assert {shape[-1] for _, shape, did in engine_calls if did} == {16}
