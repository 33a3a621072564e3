"""Paste-back, API (positional, named, invalid), X/Y/Z axes, and the README's API payloads."""

from __future__ import annotations

import json
import re

import pytest
import torch
from modules import infotext_utils, scripts
from modules.api import api
from modules.infotext_utils import parse_generation_parameters

from ae_lib.params import FIELDS
from ae_webui import xyz
from tests import webui_host as host
from tests.webui_host import ae, run_txt2img


@pytest.fixture(autouse=True)
def _host():
    host.start()


def _api(args, **fields):
    request = {"prompt": "a cat and a frog", "steps": 4, "width": 128, "height": 128, "seed": 3,
               "alwayson_scripts": {"attend and excite": {"args": args}}, **fields}
    return api.text2imgapi(request)


def test_paste_back_restores_the_accordion():
    params = ae("cat, frog#2", step_size=12.5, smoothing=False, thresholds="0:0.1, 0.3:0.6", max_refine=3)
    processed, _ = run_txt2img(params, prompt="a frog, a cat and a frog", steps=4)
    info = processed.infotexts[0]
    assert 'AE subjects: "cat, frog#2"' in info  # quoted because of the comma
    fields = host.script().infotext_fields
    pasted = infotext_utils.apply_paste(fields, info)
    expected = [getattr(params, f.name) for f in FIELDS if f.name == "enabled" or f.infotext]
    assert [pasted[c] for c, _ in fields] == expected

    plain_info = run_txt2img(None, steps=4)[0].infotexts[0]
    assert "AE " not in plain_info, "nothing is written when A&E is off"
    unchanged = infotext_utils.apply_paste(fields, plain_info)
    assert list(unchanged.values()) == [False], "pasting a plain image only turns A&E off"


@pytest.mark.parametrize("args", [[True, "cat, frog"], [{"enabled": True, "subjects": "cat, frog"}]])
def test_api_positional_and_named(args):
    processed = _api(args)
    info = parse_generation_parameters(processed.infotexts[0])
    assert info["AE subjects"] == "cat, frog" and info["AE scores"].startswith("cat ")


def test_api_same_result_positional_and_named():
    a = _api([True, "cat, frog", 0.5, "0:0.05, 0.2:0.5, 0.4:0.8", 20.0])
    b = _api([{"enabled": True, "subjects": "cat, frog"}])
    assert torch.equal(a.latents, b.latents)


@pytest.mark.parametrize(("args", "message"), [
    ([{"enabled": True, "subjects": "cat", "step_size": -3}], "below the minimum"),
    ([True, "cat", float("nan")], "not a finite number"),
    ([{"enabled": True, "subjects": "cat", "colour": "red"}], "unknown parameter 'colour'"),
    ([True, "dog"], "'dog' is not a word of the prompt"),
    ([True, ""], "no subjects given"),
    ([True, " , "], "no subjects given"),
    ([True, "0, 99"], "start token"),
])
def test_api_bad_values_still_return_the_image(args, message):
    processed = _api(args)
    assert processed.images and torch.isfinite(processed.latents).all()
    assert message in parse_generation_parameters(processed.infotexts[0])["AE error"]


def test_readme_api_payloads_run():
    readme = (host.ROOT / "README.md").read_text()
    curl = json.loads(re.search(r"-d '(\{.*?\})'", readme, flags=re.S).group(1))
    python_block = re.search(r"```python\n(import requests.*?)```", readme, flags=re.S).group(1)
    namespace: dict = {}
    exec(python_block.split("info = ")[0].replace("import requests", ""), namespace)  # the payload only
    for payload in (curl, namespace["payload"]):
        small = {**payload, "steps": 4, "width": 128, "height": 128}
        info = parse_generation_parameters(api.text2imgapi(small).infotexts[0])
        assert info["AE subjects"] == "cat, frog" and "AE error" not in info


def _xyz_module():
    return next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")


def test_xyz_axes_registered_once_and_applied():
    module = _xyz_module()
    xyz.register_axes()
    xyz.register_axes()
    labels = [o.label for o in module.axis_options if o.label.startswith(xyz.PREFIX)]
    assert labels == [xyz.PREFIX + label for _, label, _ in xyz.AXES]
    step = next(o for o in module.axis_options if o.label == xyz.PREFIX + "Step size")
    onoff = next(o for o in module.axis_options if o.label == xyz.PREFIX + "On/off")
    p = host.txt2img_p(ae(), steps=4)
    cells = module.run_cells(p, step, [10.0, 30.0], onoff, ["True", "False"])
    infos = [parse_generation_parameters(c.infotexts[0]) for c in cells]
    assert [i.get("AE step size") for i in infos] == ["10", "30", None, None]
    assert [("AE subjects" in i) for i in infos] == [True, True, False, False], "no stale keys across cells"
    with pytest.raises(RuntimeError, match="below the minimum"):
        step.confirm(p, [-1.0])
