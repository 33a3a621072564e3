"""SD.Next (vladmandic/sdnext 058a7f0) with this extension installed, offline on CPU, tiny diffusers SD1.5 and SDXL.

Issue 18: the extension never breaks SD.Next (before, every txt2img/img2img API request answered HTTP 500 with
or without A&E: our `ui()` read `self.tabname`, which SD.Next's Script lacks, and SD.Next's API calls every
script's `ui()` unguarded), and A&E acts there through the diffusers pipeline (ae_webui/pipeline_run.py). The
scenarios shared with the other WebUIs (on/off, rise on 4 seeds, PNG info, named/positional, bad input, batch,
hires, img2img) run on SD.Next's targets in test_api.py; here are SD.Next's own: both routes and families,
X/Y/Z with its grid script, interrupt, every sampler it lists.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
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
# SD.Next reads every extension folder's git metadata (modules/extensions.py:Extension.read_info: `repo.description`
# opens .git/description). A clone made without git's templates lacks that file (CI's clone does), and SD.Next then
# logs an ERROR naming our folder: the host reading the checkout, not our code.
HOST_GIT_READ = "Extension: failed reading data from git"


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
            if re.search(r"^\S+ ERROR |Traceback|\u2771", r, re.MULTILINE) and any(k in r for k in OURS)
            and HOST_GIT_READ not in r]


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
def test_with_ae_it_acts(sdnext: WebUI, family: str, route: str, form: str) -> None:
    """Before: 'A&E did not act' in every image (phase one). Now the image changes and carries its scores."""
    args: list[Any] = [{"enabled": True, "subjects": "cat, frog"}]
    if form == "positional":
        args = [True, "cat, frog", *(f.default for f in FIELDS[2:])]
    plain = _run(sdnext, {}, route)
    out = _run(sdnext, {"alwayson_scripts": {TITLE: {"args": args}}}, route)
    assert out.infotext_value("AE error") is None, out.infotexts[0]
    assert re.fullmatch(r"cat \d\.\d+, frog \d\.\d+", out.infotext_value("AE scores") or ""), out.infotexts[0]
    assert out.infotext_value("AE subjects") == "cat, frog"
    assert out.pixels().shape == plain.pixels().shape and (out.pixels() != plain.pixels()).any()


def test_infotext_values_are_plain_strings(sdnext: WebUI) -> None:
    out = _run(sdnext, {"alwayson_scripts": {TITLE: {"args": [{"enabled": True, "subjects": "cat, frog",
                                                                 "step_size": 12.5}]}}})
    ours = {k: v for k, v in out.info["extra_generation_params"].items() if k.startswith("AE ")}
    assert set(ours) >= {"AE subjects", "AE step size", "AE scores"}, ours
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
    labels = ("On/off", "Subjects", "Step size", "Steps altered", "Objective", "Groups")
    assert ours == [f"[Attend and Excite] {label}" for label in labels]
    args = [a.get("value") for a in info["args"]]  # the UI's defaults, then X = our step size axis
    args[0], args[1] = x_type["choices"].index("[Attend and Excite] Step size"), "5, 10"
    out = _run(sdnext, {"script_name": XYZ, "script_args": args,
                        "alwayson_scripts": {TITLE: {"args": [{"subjects": "cat, frog"}]}}})
    cells = [t for t in out.infotexts if "AE step size" in t]
    assert [re.search(r"AE step size: (\S+?),", t).group(1) for t in cells][-2:] == ["5", "10"], out.infotexts
    assert all("AE scores" in t and "AE error" not in t for t in cells[-2:]), "A&E acts in every cell"
    assert _our_errors(sdnext) == []


def test_interrupt_leaves_the_model_as_before(sdnext: WebUI) -> None:
    """An interrupt mid-refinement: SD.Next's own callback raises in the pipeline (never calls postprocess);
    our after_process callback removes the UNet hook and the task_args callback, so the next image is plain."""
    plain_before = _run(sdnext, {"seed": 21})
    slow = {"seed": 22, "width": 128, "height": 128, "steps": 10,
            "alwayson_scripts": {TITLE: {"args": [{"enabled": True, "subjects": "cat, frog",
                                                   "thresholds": "0:0.999", "max_refine": 100}]}}}
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("gen", _run(sdnext, slow)))
    worker.start()
    seen = ""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.is_alive():
        seen = sdnext.get("/sdapi/v1/progress?skip_current_image=true").get("textinfo") or ""
        if "Attend and Excite: refining" in seen:
            sdnext.post("/sdapi/v1/interrupt", {})
            break
        time.sleep(0.2)
    worker.join(timeout=300)
    assert "Attend and Excite: refining" in seen, f"refinement progress never showed (last: {seen!r})"
    assert "gen" in result, "the interrupted generation still returns"
    plain_after = _run(sdnext, {"seed": 21})
    assert (plain_before.pixels() == plain_after.pixels()).all(), "the model must be exactly as before"


def test_every_sampler_acts_or_is_refused_with_the_reason(sdnext: WebUI, family: str) -> None:
    """Each sampler SD.Next lists. SD.Next's info names the diffusers scheduler that actually ran (it redirects
    some names, e.g. FlowMatch ones on SD1.5, and falls back to the model's default where one cannot run). A&E
    acts (scores, no error, a changed image) only with a scheduler known to call the UNet once per step (at every
    altered step the scheduler's own latent is also checked to be the one the UNet's input was made from, or
    A&E stands down saying so), and is off with that scheduler's name and reason otherwise, the image plain."""
    from ae_diffusers.schedulers import KNOWN

    if family != "sd15":
        pytest.skip("the schedulers are the same objects for SDXL; their sweep runs once, on SD1.5")
    names = [s["name"] for s in sdnext.get("/sdapi/v1/samplers")]
    assert len(names) > 5, names
    rows, failures = [], []
    args = {TITLE: {"args": [{"enabled": True, "subjects": "cat, frog", "max_refine": 0}]}}
    for name in names:
        plain = _run(sdnext, {"sampler_name": name})
        out = _run(sdnext, {"sampler_name": name, "alwayson_scripts": args})
        ran = out.infotext_value("Scheduler") or "?"
        error, scores = out.infotext_value("AE error"), out.infotext_value("AE scores")
        changed = bool((out.pixels() != plain.pixels()).any())
        if error is None and scores and changed and ran in KNOWN:
            rows.append(f"{name} ({ran}): acts")
        elif error and error.startswith(f"A&E is off: {ran} ") and not scores and not changed:
            rows.append(f"{name} ({ran}): refused")
        else:
            failures.append(f"{name} ({ran}): error={error!r} scores={scores!r} changed={changed}")
    print("\n".join(rows))
    assert not failures, failures
    assert any(": acts" in r for r in rows)


def test_step_zero_is_altered(sdnext: WebUI, family: str) -> None:
    """No callback_on_step_end sees step 0's latent: with only step 0 in the window (4 steps, a quarter altered),
    the image still changes, so the UNet pre-hook moved the pipeline's own latent before step 0's UNet call."""
    plain = _run(sdnext, {"steps": 4})
    args = {TITLE: {"args": [{"enabled": True, "subjects": "cat, frog", "steps_altered": 0.25, "max_refine": 0}]}}
    out = _run(sdnext, {"steps": 4, "alwayson_scripts": args})
    assert out.infotext_value("AE error") is None and out.infotext_value("AE scores"), out.infotexts[0]
    assert (out.pixels() != plain.pixels()).any(), "A&E at step 0 must move the image"
