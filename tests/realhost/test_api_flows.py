"""Longer flows in the real hosts: the README's API examples as written, the X/Y/Z axes, an interrupt in the
middle of refinement, and that the model is exactly as before afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.realhost.conftest import ae, generate
from tests.realhost.hostenv import ROOT
from tests.realhost.infotext import parse
from tests.realhost.targets import SD1, Live, select

pytestmark = pytest.mark.realhost
PROMPT = "a cat and a frog"
XYZ = "x/y/z plot"


@pytest.fixture(scope="module", params=SD1)
def sd1(request: pytest.FixtureRequest) -> Live:
    return select(request, request.param)


def _readme_blocks() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    curl = re.search(r"```bash\n(curl .*?)```", readme, flags=re.S).group(1)
    python = re.search(r"```python\n(import requests.*?)```", readme, flags=re.S).group(1)
    return curl, python


def test_readme_api_examples_run_as_written(sd1: Live) -> None:
    if sd1.target.host != "a1111":
        pytest.skip("512 px, 20 steps: run in A1111 only (the Forge tiny UNet is full width)")
    curl, python = _readme_blocks()
    url = sd1.webui.url
    out = subprocess.run(["bash", "-c", curl.replace("http://127.0.0.1:7860", url)], capture_output=True,
                         text=True, timeout=900, check=True)
    info = json.loads(json.loads(out.stdout)["info"])
    assert parse(info["infotexts"][0])["AE scores"].startswith("cat "), info["infotexts"][0]
    namespace: dict = {}
    exec(python.replace("http://127.0.0.1:7860", url), namespace)  # the README's own code, run as written
    assert parse(json.loads(namespace["info"])["infotexts"][0])["AE scores"].startswith("cat ")


def _xyz_args(webui, axes: dict[str, tuple[str, str]]) -> list:
    """X/Y/Z script args from its script-info defaults, with {"X": (axis label, values), ...} set."""
    script = next(s for s in webui.get("/sdapi/v1/script-info") if s["name"] == XYZ and not s["is_img2img"])
    args = [a["value"] for a in script["args"]]
    names = [a["label"] for a in script["args"]]
    for i, a in enumerate(script["args"]):  # axis types are index dropdowns: script-info shows their labels
        axis = a["label"].removesuffix(" type")
        if a["label"].endswith(" type") and axis in ("X", "Y", "Z"):
            label, values = axes.get(axis, (a["value"], ""))
            args[i] = a["choices"].index(label)
            # Two args are labelled "X values": the textbox, then the dropdown that an axis with choices (On/off)
            # is read from unless the script's CSV mode is on.
            text, dropdown = [j for j, n in enumerate(names) if n == f"{axis} values"]
            args[text] = values
            args[dropdown] = [v.strip() for v in values.split(",") if v.strip()]
    args[names.index("Include Sub Images")] = True
    return args


def test_xyz_axes(sd1: Live) -> None:
    script = next(s for s in sd1.webui.get("/sdapi/v1/script-info") if s["name"] == XYZ and not s["is_img2img"])
    choices = next(a for a in script["args"] if a["label"] == "X type")["choices"]
    ours = [c for c in choices if c.startswith("[Attend and Excite] ")]
    names = ("On/off", "Subjects", "Step size", "Steps altered", "Objective", "Groups")
    assert ours == [f"[Attend and Excite] {n}" for n in names]
    axes = {"X": (ours[2], "0, 30"), "Y": (ours[0], "True, False")}
    payload = {"prompt": PROMPT, "script_name": XYZ, "script_args": _xyz_args(sd1.webui, axes),
               "alwayson_scripts": ae(subjects="cat, frog")}
    gen = generate(sd1.webui, payload)
    assert len(gen.images) == 5, gen.infotexts  # the grid, then each cell's image ("Include Sub Images")
    sizes = [gen.infotext_value("AE step size", i) for i in range(1, 5)]
    assert sizes == ["0", "30", None, None], sizes  # the axis value, the default is not written
    on = ["AE subjects" in gen.infotexts[i] for i in range(1, 5)]
    assert on == [True, True, False, False], "no A&E keys left over in the cells it is off"
    assert not np.array_equal(gen.pixels(1), gen.pixels(2))
    assert np.array_equal(gen.pixels(3), gen.pixels(4)), "off is off, whatever the step size"


def test_xyz_objective_axis_offers_the_objectives(sd1: Live) -> None:
    from ae_lib.objectives import OBJECTIVES

    if sd1.target.host != "a1111":
        pytest.skip("the objective's inputs are one code path in every WebUI: run in A1111 only")
    script = next(s for s in sd1.webui.get("/sdapi/v1/script-info") if s["name"] == XYZ and not s["is_img2img"])
    assert "[Attend and Excite] Objective" in next(a for a in script["args"] if a["label"] == "X type")["choices"]
    axes = {"X": ("[Attend and Excite] Objective", "excite, contrast"),
            "Y": ("[Attend and Excite] Groups", "cat frog")}
    payload = {"prompt": PROMPT, "script_name": XYZ, "script_args": _xyz_args(sd1.webui, axes),
               "alwayson_scripts": ae(subjects="cat, frog", thresholds="0:0.05", max_refine=2)}
    gen = generate(sd1.webui, payload)
    assert len(gen.images) == 3, gen.infotexts
    assert [gen.infotext_value("AE objective", i) for i in (1, 2)] == [None, "contrast"], gen.infotexts
    assert "the excite objective takes no groups" in (gen.infotext_value("AE error", 1) or ""), gen.infotexts[1]
    assert gen.infotext_value("AE measure", 2) == OBJECTIVES["contrast"].measure, gen.infotexts[2]
    bad = {"prompt": PROMPT, "script_name": XYZ,
           "script_args": _xyz_args(sd1.webui, {"X": ("[Attend and Excite] Objective", "nope")})}
    with pytest.raises(RuntimeError, match="'nope' is not one of"):
        generate(sd1.webui, bad)


def test_xyz_rejects_a_bad_axis_value(sd1: Live) -> None:
    label = "[Attend and Excite] Step size"
    payload = {"prompt": PROMPT, "script_name": XYZ, "script_args": _xyz_args(sd1.webui, {"X": (label, "5, -1")})}
    with pytest.raises(RuntimeError, match="below the minimum"):
        generate(sd1.webui, payload)


def test_interrupt_during_refinement_leaves_the_model_as_before(sd1: Live) -> None:
    plain_before = generate(sd1.webui, {"prompt": PROMPT, "seed": 21})
    slow = {"prompt": PROMPT, "seed": 22, "width": 128, "height": 128, "steps": 10,
            "alwayson_scripts": ae(subjects="cat, frog", thresholds="0:0.999", max_refine=100)}
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("gen", generate(sd1.webui, slow)))
    worker.start()
    seen = ""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.is_alive():
        seen = sd1.webui.get("/sdapi/v1/progress?skip_current_image=true").get("textinfo") or ""
        if "Attend and Excite: refining" in seen:
            sd1.webui.post("/sdapi/v1/interrupt", {})
            break
        time.sleep(0.2)
    worker.join(timeout=300)
    assert "Attend and Excite: refining" in seen, f"refinement progress never showed (last: {seen!r})"
    assert "gen" in result and len(result["gen"].images) >= 1, "the interrupted generation still returns"
    plain_after = generate(sd1.webui, {"prompt": PROMPT, "seed": 21})
    assert np.array_equal(plain_before.pixels(), plain_after.pixels()), "the model must be exactly as before"
