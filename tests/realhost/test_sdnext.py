"""SD.Next (vladmandic/sdnext 058a7f0) with this extension installed, offline on CPU, tiny diffusers SD1.5 and SDXL.

Phase one of issue 18: the extension never breaks SD.Next. Before, every txt2img/img2img API request answered
HTTP 500 with or without A&E (our `ui()` read `self.tabname`, which SD.Next's Script lacks, and SD.Next's API calls
every script's `ui()` unguarded), the page showed a dead half-built accordion and the X/Y/Z axes failed. A&E
cannot act in SD.Next yet (its sampler is a diffusers pipeline that never calls process_before_every_sampling), so
an image asked for with A&E must say so in its info.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest

from ae_lib.params import FIELDS
from tests.realhost.conftest import Generation, generate, use_model
from tests.realhost.server import EXTENSION_NAME, WebUI

pytestmark = pytest.mark.realhost
TITLE = "attend and excite"
OURS = ("attend_and_excite", "attend_excite", "ae_webui", "ae_lib", EXTENSION_NAME, "Attend and Excite")
DID_NOT_ACT = "A&E did not act"
RECORD = re.compile(r"^\d\d:\d\d:\d\d-\d+ ")
OUR_LOG = "[Attend and Excite]"
XYZ = "xyz grid script"


def _png(size: int = 64) -> str:
    from PIL import Image

    image = Image.new("RGB", (size, size), (120, 160, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _records(lines: list[str]) -> list[str]:
    """SD.Next's log records (a timestamped line and its continuation lines, tracebacks included); our own
    logger's lines ("[Attend and Excite] ...", on stderr) are records of their own."""
    records: list[list[str]] = []
    for line in lines:
        if not records or RECORD.match(line) or line.startswith(OUR_LOG):
            records.append([])
        records[-1].append(line)
    return ["\n".join(r) for r in records]


def _our_errors(webui: WebUI, since: int = 0) -> list[str]:
    """Log records from line `since` on that report an error or a traceback and involve this extension."""
    return [r for r in _records(webui.log_text().splitlines()[since:])
            if re.search(r"^\S+ ERROR |Traceback|\u2771", r, re.MULTILINE) and any(k in r for k in OURS)]


def _mark(webui: WebUI) -> int:
    return len(webui.log_text().splitlines())


def _run(webui: WebUI, payload: dict[str, Any], route: str = "txt2img") -> Generation:
    if route == "img2img":
        payload = {"init_images": [_png()], "denoising_strength": 0.6, **payload}
    return generate(webui, {"prompt": "a cat and a frog", **payload}, route)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def family(request: pytest.FixtureRequest, sdnext: WebUI) -> str:
    from tests.realhost import models_sdnext

    use_model(sdnext, models_sdnext.title(request.param))
    return request.param


def test_the_script_is_listed_without_errors(sdnext: WebUI) -> None:
    listed = sdnext.get("/sdapi/v1/scripts")
    assert TITLE in listed["txt2img"] and TITLE in listed["img2img"], listed
    infos = [i for i in sdnext.get("/sdapi/v1/script-info") if i["name"] == TITLE]
    assert infos and all(len(i["args"]) == len(FIELDS) for i in infos), "the UI built fully (every control)"
    assert _our_errors(sdnext) == []


@pytest.mark.parametrize("route", ["txt2img", "img2img"])
def test_generation_without_ae(sdnext: WebUI, family: str, route: str) -> None:
    """The test that fails before the fix: HTTP 500 for every request once the extension is installed."""
    since = _mark(sdnext)
    out = _run(sdnext, {}, route)
    assert out.pixels().shape == (64, 64, 3)
    assert "AE " not in out.infotexts[0], "nothing is written when A&E is off"
    assert _our_errors(sdnext, since) == []


@pytest.mark.parametrize("form", ["named", "positional"])
@pytest.mark.parametrize("route", ["txt2img", "img2img"])
def test_with_ae_the_info_says_it_did_not_act(sdnext: WebUI, family: str, route: str, form: str) -> None:
    args: list[Any] = [{"enabled": True, "subjects": "cat, frog"}]
    if form == "positional":
        args = [True, "cat, frog", *(f.default for f in FIELDS[2:])]
    out = _run(sdnext, {"alwayson_scripts": {TITLE: {"args": args}}}, route)
    assert out.pixels().shape == (64, 64, 3), "the image is still made"
    error = out.infotext_value("AE error")
    assert error is not None and error.startswith(DID_NOT_ACT), out.infotexts[0]
    assert "diffusers pipeline" in error and "process_before_every_sampling" in error
    assert out.infotext_value("AE subjects") == "cat, frog"
    assert out.info["extra_generation_params"]["AE error"] == error


def test_infotext_values_are_plain_strings(sdnext: WebUI) -> None:
    out = _run(sdnext, {"alwayson_scripts": {TITLE: {"args": [{"enabled": True, "subjects": "cat, frog",
                                                                 "step_size": 12.5}]}}})
    ours = {k: v for k, v in out.info["extra_generation_params"].items() if k.startswith("AE ")}
    assert set(ours) >= {"AE subjects", "AE step size", "AE error"}, ours
    assert all(isinstance(v, str) for v in ours.values()), ours
    assert "<function" not in json.dumps(out.info) and "<function" not in out.infotexts[0]


def test_bad_values_are_reported_and_the_image_made(sdnext: WebUI) -> None:
    out = _run(sdnext, {"alwayson_scripts": {TITLE: {"args": [{"enabled": True, "subjects": "cat",
                                                                 "step_size": "lots"}]}}})
    assert out.pixels().shape == (64, 64, 3)
    error = out.infotext_value("AE error") or ""
    assert error.startswith("A&E is off") and "Step size" in error and "'lots'" in error, out.infotexts[0]


def test_the_xyz_script_runs_our_axes(sdnext: WebUI) -> None:
    """SD.Next's X/Y/Z script (scripts/xyz_grid.py, "XYZ Grid Script") lists our axes and applies them per cell."""
    info = next(i for i in sdnext.get("/sdapi/v1/script-info") if i["name"] == XYZ and not i["is_img2img"])
    x_type = next(a for a in info["args"] if a["label"] == "X type")
    ours = [c for c in x_type["choices"] if c.startswith("[Attend and Excite] ")]
    assert ours == [f"[Attend and Excite] {label}" for label in ("On/off", "Subjects", "Step size", "Steps altered")]
    args = [a.get("value") for a in info["args"]]  # the UI's defaults, then X = our step size axis
    args[0], args[1] = x_type["choices"].index("[Attend and Excite] Step size"), "5, 10"
    out = _run(sdnext, {"script_name": XYZ, "script_args": args,
                        "alwayson_scripts": {TITLE: {"args": [{"subjects": "cat, frog"}]}}})
    cells = [t for t in out.infotexts if "AE step size" in t]
    assert [re.search(r"AE step size: (\S+?),", t).group(1) for t in cells][-2:] == ["5", "10"], out.infotexts
    assert all(DID_NOT_ACT in t for t in cells), "the axis turns A&E on; SD.Next says it did not act"
    assert _our_errors(sdnext) == []
