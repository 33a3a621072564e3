"""Tests of the A1111 v1.10.1 stand-in in tests/webui_stub (not of the extension)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

STUB = Path(__file__).parent / "webui_stub"
if str(STUB) not in sys.path:
    sys.path.insert(0, str(STUB))

from modules import (  # noqa: E402
    errors,
    infotext_utils,
    processing,
    prompt_parser,
    script_callbacks,
    scripts,
    sd_models,
    sd_samplers,
    shared,
    txt2img,
)
from modules.api import api  # noqa: E402
from webui_stub_env import reset_host, start_webui  # noqa: E402

PER_IMAGE = ["post_sample", "postprocess_batch", "postprocess_batch_list", "postprocess_image",
             "postprocess_maskoverlay", "postprocess_image_after_composite"]


@pytest.fixture(scope="module")
def host():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread is several times faster for this tiny UNet
    ext = STUB / "recorder_extension"  # scripts/recorder.py: records every hook call
    model = start_webui(str(ext))
    yield {"ext": ext, "model": model}
    torch.set_num_threads(threads)


@pytest.fixture
def rec(host):
    """The recorder module (loaded by path, not in sys.modules) with a cleared call list."""
    reset_host()
    sd_models.load_model(host["model"])
    module = next(d.module for d in scripts.scripts_data if d.script_class.__name__ == "RecorderScript")
    module.calls.clear()
    module.RecorderScript.fail_in = None
    yield module
    for cb in list(script_callbacks.callback_map["callbacks_cfg_denoiser"]):
        script_callbacks.remove_callbacks_for_function(cb.callback)


def t2i(**kw) -> processing.StableDiffusionProcessingTxt2Img:
    base = dict(prompt="a cat and a frog", negative_prompt="", seed=7, steps=4, sampler_name="Euler",
                width=64, height=64, cfg_scale=7.0)
    return processing.StableDiffusionProcessingTxt2Img(**{**base, **kw})


def test_usage_example(rec):
    """How a test drives the stand-in: UI-path txt2img with the extension's args in script_args."""
    runner = scripts.scripts_txt2img
    args = txt2img.ui_default_args(runner)
    recorder = runner.script("AE Recorder")
    args[recorder.args_from:recorder.args_to] = [True, 12.0]
    p = txt2img.txt2img_create_processing(args, prompt="a cat and a frog", steps=3, sampler_name="Euler a", seed=5,
                                          width=64, height=64)
    processed = txt2img.txt2img(p)
    assert processed.latents.shape == (1, 4, 8, 8)
    assert p.steps == 3 and p.sampler_name == "Euler a"  # filled by the built-in Sampler script's setup()
    assert p.sampler is None  # closing(p)
    assert [c[2] for c in rec.calls if c[0] == "process"] == [(True, 12.0)]


@pytest.mark.parametrize("name", [s.name for s in sd_samplers.all_samplers if s.name != "UniPC"])
def test_every_sampler_gives_finite_latents(rec, name):
    res = processing.process_images(t2i(sampler_name=name))
    assert res.latents.shape == (1, 4, 8, 8)
    assert torch.isfinite(res.latents).all()
    assert res.latents.abs().max() > 0


@pytest.mark.parametrize("name", ["Euler a", "DPM++ SDE", "DDIM"])
def test_identical_runs_are_bit_identical(rec, name):
    a = processing.process_images(t2i(sampler_name=name, batch_size=2)).latents
    b = processing.process_images(t2i(sampler_name=name, batch_size=2)).latents
    c = processing.process_images(t2i(sampler_name=name, batch_size=2, seed=8)).latents
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # per-image seeds 7, 8


# c = one CFGDenoiser call, S = the sampler's step callback (callback_state); 4 steps (DDIM/PLMS: 4 timesteps ->
# 3 iterations). Heun-type: the step's 1st call, callback, then the 2nd call (none on the last step).
@pytest.mark.parametrize(("name", "pattern", "second_order"), [
    ("Euler", "cScScScS", False), ("Euler a", "cScScScS", False), ("LMS", "cScScScS", False),
    ("DPM++ 2M", "cScScScS", False), ("Heun", "cSccSccSccS", True), ("DPM2", "cSccSccSccS", True),
    ("DPM++ SDE", "cSccSccSccS", True), ("DPM++ 2S a", "cSccSccSccS", True), ("DPM fast", "cScccS", False),
    ("DDIM", "cScScS", False), ("PLMS", "ccScScS", False),
])
def test_model_calls_per_step(rec, name, pattern, second_order):
    events = []
    script_callbacks.on_cfg_denoiser(lambda params: events.append(("c", params.denoiser.step, params.sampling_step)))
    orig_create = sd_samplers.create_sampler

    def create(*a, **kw):  # mark every callback_state (end of a sampler step)
        sampler = orig_create(*a, **kw)
        inner = sampler.callback_state
        sampler.callback_state = lambda d: (events.append(("S", d["i"], None)), inner(d))
        return sampler

    sd_samplers.create_sampler = create
    try:
        processing.process_images(t2i(sampler_name=name))
    finally:
        sd_samplers.create_sampler = orig_create
    assert "".join(e[0] for e in events) == pattern
    calls = [e for e in events if e[0] == "c"]
    assert [c[1] for c in calls] == list(range(len(calls)))  # CFGDenoiser.step counts model calls from 0
    assert sd_samplers.find_sampler_config(name).options.get("second_order", False) == second_order
    assert calls[0][2] == 0 and calls[1][2] == 0  # state.sampling_step lags (set after the step's first call)


def test_tokenize_line_columns(rec):
    clip = shared.sd_model.cond_stage_model
    chunks, count = clip.tokenize_line("a cat and a frog")
    assert len(chunks) == 1 and count == 5
    assert chunks[0].tokens == [49406, 320, 2368, 537, 320, 11438, 49407] + [49407] * 70
    long_chunks, long_count = clip.tokenize_line("cat " * 100)
    assert len(long_chunks) == 2 and long_count == 100
    assert shared.sd_model.get_learned_conditioning(["cat " * 100]).shape == (1, 154, 32)
    brk, _ = clip.tokenize_line("a cat BREAK a frog")
    assert brk[0].tokens[:4] == [49406, 320, 2368, 49407] and brk[1].tokens[:4] == [49406, 320, 11438, 49407]
    back, _ = clip.tokenize_line("cat " * 70 + ", " + "dog " * 10)  # comma backtrack (20)
    assert back[0].tokens[71] == 267 and back[0].tokens[72:] == [49407] * 5
    assert back[1].tokens[1:11] == [1929] * 10 and back[1].tokens[11] == 49407
    emph, _ = clip.tokenize_line("a (cat:1.5) and [frog]")
    assert emph[0].tokens[:6] == [49406, 320, 2368, 537, 11438, 49407]
    assert emph[0].multipliers[2] == 1.5 and abs(emph[0].multipliers[4] - 1 / 1.1) < 1e-9


def test_sd2_wrapper_pads_with_zero(rec):
    model = sd_models.load_model(sd_models.make_sd2_model(0))
    clip = model.cond_stage_model
    chunks, _ = clip.tokenize_line("a cat and a frog")
    assert chunks[0].tokens[:8] == [49406, 320, 2368, 537, 320, 11438, 49407, 49407]  # chunk list keeps end id
    seen = []
    orig = clip.wrapped.encode_with_transformer
    clip.wrapped.encode_with_transformer = lambda t: (seen.append(t.clone()), orig(t))[1]
    clip(["a cat and a frog"])
    assert seen[0][0, :8].tolist() == [49406, 320, 2368, 537, 320, 11438, 49407, 0]
    res = processing.process_images(t2i())
    assert torch.isfinite(res.latents).all()


def test_hook_order_and_samplers(rec):
    runner = scripts.scripts_txt2img
    args = txt2img.ui_default_args(runner)
    p = txt2img.txt2img_create_processing(args, prompt="a cat <lora:x:1>", steps=2, sampler_name="Euler", seed=3,
                                          n_iter=2, width=64, height=64)
    txt2img.txt2img(p)
    names = [c[0] for c in rec.calls]
    batch = ["before_process_batch", "after_extra_networks_activate", "process_batch",
             "process_before_every_sampling", *PER_IMAGE]
    assert names == ["setup", "before_process", "process", *batch, *batch, "postprocess"]
    by = {}
    for c in rec.calls:
        by.setdefault(c[0], []).append(c)
    assert by["setup"][0][4]["steps"] == 50  # extension setup() runs BEFORE the built-in Sampler setup()
    assert by["process"][0][4]["steps"] == 2 and by["process"][0][4]["prompts"] == ["a cat <lora:x:1>"] * 2
    assert by["process_batch"][0][4]["prompts"] == ["a cat "]  # extra networks stripped
    assert by["process_batch"][0][3] is None  # no sampler yet in batch 1 ...
    first_sampler = by["process_before_every_sampling"][0][3]
    assert by["process_batch"][1][3] is first_sampler  # ... the stale one of batch 1 in batch 2
    assert by["process_before_every_sampling"][1][3] is not first_sampler  # txt2img: new sampler per batch
    assert all(c[2] == (False, 20.0) for c in rec.calls)  # ui() defaults, sliced from script_args


def test_hires_hooks(rec):
    p = t2i(enable_hr=True, hr_scale=2, hr_second_pass_steps=2, denoising_strength=0.5)
    p.scripts = scripts.scripts_txt2img
    p.script_args = tuple(txt2img.ui_default_args(scripts.scripts_txt2img))
    res = processing.process_images(p)
    names = [c[0] for c in rec.calls]
    i = names.index("before_hr")  # hires pass: extra networks re-activated, before_hr, then sampling hook again
    assert names[i - 2:i + 3] == ["process_before_every_sampling", "after_extra_networks_activate", "before_hr",
                                  "process_before_every_sampling", "post_sample"]
    pbes = [c for c in rec.calls if c[0] == "process_before_every_sampling"]
    assert [c[4]["hr"] for c in pbes] == [False, True] and pbes[1][4]["x"].shape == (1, 4, 16, 16)
    assert [c[3] for c in rec.calls if c[0] == "post_sample"] == [None]  # hires pass sets p.sampler = None
    assert res.latents.shape == (1, 4, 16, 16) and res.images[0].size == (128, 128)


def test_img2img_reuses_one_sampler(rec):
    runner = scripts.scripts_img2img
    p = processing.StableDiffusionProcessingImg2Img(prompt="a frog", steps=4, sampler_name="Euler", seed=1,
                                                    width=64, height=64, n_iter=2, denoising_strength=0.5)
    p.init_latent = torch.zeros(1, 4, 8, 8)
    p.scripts = runner
    p.script_args = tuple(txt2img.ui_default_args(runner))
    res = processing.process_images(p)
    samplers = [c[3] for c in rec.calls if c[0] == "process_before_every_sampling"]
    assert len(samplers) == 2 and samplers[0] is samplers[1] is not None
    assert res.latents.shape == (2, 4, 8, 8)


def test_hook_errors_are_reported_not_raised(rec):
    rec.RecorderScript.fail_in = "process_batch"
    script_callbacks.on_cfg_denoiser(lambda params: 1 / 0)
    p = t2i()
    p.scripts = scripts.scripts_txt2img
    p.script_args = tuple(txt2img.ui_default_args(scripts.scripts_txt2img))
    res = processing.process_images(p)
    assert len(res.images) == 1
    messages = [m for m, _ in errors.reported]
    assert any("Error running process_batch" in m for m in messages)
    assert any("cfg_denoiser_callback" in m for m in messages)


def test_interrupt_stops_sampling_and_later_batches(rec):
    calls = []

    def cb(params):
        calls.append(1)
        if len(calls) == 2:
            shared.state.interrupt()

    script_callbacks.on_cfg_denoiser(cb)
    res = processing.process_images(t2i(n_iter=2, steps=6))
    assert len(calls) == 2 and len(res.images) == 1 and torch.isfinite(res.latents).all()


def test_cfg_denoiser_x_is_a_new_tensor_and_prehook_writes_persist(rec):
    seen = {}

    def pbes_hook(params):
        seen["x_in"] = params.x

    script_callbacks.on_cfg_denoiser(pbes_hook)
    base = processing.process_images(t2i(steps=2)).latents
    orig_create = sd_samplers.create_sampler

    def create(*a, **kw):
        sampler = orig_create(*a, **kw)

        def pre(module, args):
            seen["x"] = args[0]
            args[0].add_(0.5)  # in place: reaches the sampler's arithmetic

        sampler.model_wrap_cfg.register_forward_pre_hook(pre)
        return sampler

    sd_samplers.create_sampler = create
    try:
        changed = processing.process_images(t2i(steps=2)).latents
    finally:
        sd_samplers.create_sampler = orig_create
    assert seen["x_in"].data_ptr() != seen["x"].data_ptr()
    assert seen["x_in"].shape[0] == 2  # cond row + uncond row
    assert not torch.equal(base, changed)


def test_cond_cache_and_multicond_layout(rec):
    p1 = t2i(prompt="a cat AND a frog :0.5", batch_size=2)
    layout = {}

    def cb(params):
        layout.setdefault("x", params.x.shape[0])
        layout.setdefault("cond", params.text_cond.shape[0])

    script_callbacks.on_cfg_denoiser(cb)
    processing.process_images(p1)
    assert layout == {"x": 6, "cond": 4}  # 2 images x 2 sub-prompts, then 2 uncond rows
    p2 = t2i(prompt="a cat AND a frog :0.5", batch_size=2)
    processing.process_images(p2)
    assert p2.c is p1.c  # persistent class-level cond cache


def test_infotext_and_paste(rec):
    p = t2i()
    p.extra_generation_params.update({"AE": lambda p, index, **kw: f"on{index}", "AE list": ["x"],
                                      "AE gone": None, "AE tokens": "1, 2"})
    res = processing.process_images(p)
    line = res.infotexts[0].split("\n")[-1]
    assert 'AE: on0, AE list: x, AE tokens: "1, 2"' in line and "AE gone" not in line
    assert line.startswith("Steps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 7.0, Seed: 7")
    params = infotext_utils.parse_generation_parameters(res.infotexts[0])
    assert params["AE tokens"] == "1, 2" and params["Size-1"] == "64"
    fields = scripts.scripts_txt2img.script("AE Recorder").infotext_fields
    pasted = infotext_utils.apply_paste(fields, res.infotexts[0] + ", Rec scale: 7")
    assert list(pasted.values()) == [True, 7.0] and isinstance(pasted[fields[1][0]], float)
    assert infotext_utils.apply_paste(fields, res.infotexts[0])[fields[0][0]] is False


def test_script_loading_ui_and_api(host, rec):
    assert str(host["ext"]) == rec.IMPORT_BASEDIR and str(host["ext"]) == rec.IMPORT_SYS_PATH0
    assert scripts.basedir() != str(host["ext"])
    runner = scripts.scripts_txt2img
    recorder = runner.script("ae recorder")
    assert recorder.name == "ae recorder" and recorder.args_to - recorder.args_from == 2
    enabled, scale = recorder.controls
    assert enabled.elem_id == "script_txt2img_ae_recorder_enable-checkbox"
    assert enabled.accordion.elem_id == "script_txt2img_ae_recorder_enable" and enabled.visible is False
    assert scale.elem_id == "script_txt2img_ae_recorder_scale"
    assert recorder.api_info.args[1].maximum == 50
    assert scripts.scripts_img2img.script("ae recorder").elem_id("x") == "script_img2img_ae_recorder_x"
    xyz = next(d for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    assert xyz.module.AxisOption and runner.script("X/Y/Z plot") in runner.selectable_scripts
    defaults = api.init_default_script_args(runner)
    assert defaults[recorder.args_from:recorder.args_to] == [False, 20.0]
    res = api.text2imgapi({"prompt": "a cat", "steps": 3, "width": 64, "height": 64, "seed": 4,
                           "alwayson_scripts": {"AE Recorder": {"args": [True, 5, "extra ignored"]}}},
                          defaults)
    setup = next(c for c in rec.calls if c[0] == "setup")
    assert setup[1].is_api and setup[2] == (True, 5) and setup[1].sampler_name == "Euler"
    assert len(res.images) == 1
    with pytest.raises(api.HTTPException):
        api.text2imgapi({"prompt": "a", "alwayson_scripts": {"X/Y/Z plot": {}}}, defaults)


def test_xyz_cells_share_script_args(rec):
    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    seen = []
    opt = xyz.AxisOption("AE scale", float, lambda p, x, xs: setattr(p, "ae_scale", x))
    p = t2i(steps=2)
    p.scripts = scripts.scripts_txt2img
    p.script_args = tuple(txt2img.ui_default_args(scripts.scripts_txt2img))
    results = xyz.run_cells(p, opt, [1.0, 2.0])
    seen = [c[1] for c in rec.calls if c[0] == "process"]
    assert [getattr(pc, "ae_scale", None) for pc in seen] == [1.0, 2.0] and len(results) == 2
    assert seen[0].script_args is seen[1].script_args is p.script_args
    assert seen[0].extra_generation_params is p.extra_generation_params
    assert xyz.parse_values(xyz.axis_options[4], "1-5 (+2)") == [1, 3, 5]


def test_prompt_schedules_and_attention():
    pp = prompt_parser
    g = lambda text, steps=10, hr=None: pp.get_learned_conditioning_prompt_schedules([text], steps, hr)[0]  # noqa: E731
    assert g("a [b:c:5] d") == [[5, "a b d"], [10, "a c d"]]
    assert g("a [b:.5] c") == [[5, "a  c"], [10, "a b c"]]
    assert g("[fe|]male", 4) == [[1, "female"], [2, "male"], [3, "female"], [4, "male"]]
    assert g("a [b:1.5] c", 10, 10) == [[5, "a  c"], [10, "a b c"]]
    assert g("(a:1.2) [b] c") == [[10, "(a:1.2) [b] c"]]
    assert pp.parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")[1] == [
        "house", pytest.approx(1.573)]
    assert pp.parse_prompt_attention("x BREAK y") == [["x", 1.0], ["BREAK", -1], ["y", 1.0]]


def test_sampler_name_normalisation():
    assert sd_samplers.get_sampler_and_scheduler("Euler a Karras", None) == ("Euler a", "Karras")
    assert sd_samplers.get_sampler_and_scheduler(None, None) == ("DPM++ 2M", "Automatic")
    assert sd_samplers.get_sampler_and_scheduler("DPM++ 2M", "Karras") == ("DPM++ 2M", "Automatic")


def test_autograd_through_the_unet_inside_a_prehook(rec):
    """The A&E pattern: a forward pre-hook (with kwargs) re-enables grad and differentiates through the wrapper."""
    grads = []

    def pre(module, args, kwargs):
        x, sigma = args
        _, tensor = prompt_parser.reconstruct_multicond_batch(kwargs["cond"], module.step)
        with torch.enable_grad():
            leaf = x.detach().clone().requires_grad_()
            cond = {"c_crossattn": [tensor[:1]], "c_concat": [kwargs["image_cond"][:1]]}
            out = module.inner_model(leaf, sigma, cond=cond)
            grads.append(torch.autograd.grad(out.square().mean(), [leaf])[0])

    orig_create = sd_samplers.create_sampler

    def create(*a, **kw):
        sampler = orig_create(*a, **kw)
        sampler.model_wrap_cfg.register_forward_pre_hook(pre, with_kwargs=True)
        return sampler

    sd_samplers.create_sampler = create
    try:
        processing.process_images(t2i(steps=2))
    finally:
        sd_samplers.create_sampler = orig_create
    assert len(grads) == 2 and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_xyz_through_the_ui_run_path(rec):
    runner = scripts.scripts_txt2img
    xyz_script = runner.script("X/Y/Z plot")
    args = txt2img.ui_default_args(runner)
    args[0] = runner.selectable_scripts.index(xyz_script) + 1
    labels = [o.label for o in xyz_script.current_axis_options]
    args[xyz_script.args_from] = labels.index("Steps")
    args[xyz_script.args_from + 1] = "2, 3"
    p = txt2img.txt2img_create_processing(args, prompt="a cat", steps=4, width=64, height=64)
    res = txt2img.txt2img(p)
    assert [c[1].steps for c in rec.calls if c[0] == "process"] == [2, 3] and len(res.images) == 2


def test_model_loaded_callback_and_removal(rec):
    seen = []

    def on_loaded(model):
        seen.append(model)

    script_callbacks.on_model_loaded(on_loaded)
    model = sd_models.load_model(sd_models.make_sd1_model(1))
    script_callbacks.remove_callbacks_for_function(on_loaded)
    sd_models.load_model(sd_models.make_sd1_model(2))
    assert seen == [model]

