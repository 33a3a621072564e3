"""Fixtures that start the real hosts: one WebUI per host kind per test session, tiny checkpoints we build.

Without host source the tests skip, except under CI=true, where a missing host is a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.realhost import hostenv, models
from tests.realhost.server import WebUI

pytestmark = pytest.mark.realhost
TIMINGS: dict[str, float] = {}


def _install(kind: str) -> hostenv.HostInstall:
    try:
        t0 = time.monotonic()
        install = hostenv.ensure(kind)
        key = f"{kind} venv+source"  # summed: the first caller (a fixture or a test) pays for the build
        TIMINGS[key] = TIMINGS.get(key, 0.0) + time.monotonic() - t0
        return install
    except hostenv.HostUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs the real host: {error}")
        pytest.skip(str(error))


def _ckpt_dir(kind: str) -> Path:
    install = _install(kind)
    t0 = time.monotonic()
    ckpt_dir = models.ensure(install)
    TIMINGS[f"{kind} checkpoints"] = TIMINGS.get(f"{kind} checkpoints", 0.0) + time.monotonic() - t0
    return ckpt_dir


def _webui(kind: str, tmp_path_factory: pytest.TempPathFactory, extra_args: list[str],
           config: dict[str, Any] | None = None) -> Iterator[WebUI]:
    install = _install(kind)
    ckpt_dir = _ckpt_dir(kind)
    webui = WebUI(install, tmp_path_factory.mktemp(f"{kind}-host") / "webui", ckpt_dir, extra_args, config or {})
    webui.prepare()
    webui.start()
    TIMINGS[f"{kind} start"] = webui.started_s
    try:
        yield webui
    finally:
        webui.stop()


@pytest.fixture(scope="session")
def a1111(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebUI]:
    yield from _webui("a1111", tmp_path_factory, [])


@pytest.fixture(scope="session")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebUI]:
    yield from _webui("forge", tmp_path_factory, [])


@pytest.fixture(scope="session")
def classic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebUI]:
    """Forge Classic loads a model at start-up: the SD1.5 one (the only family its targets use)."""
    from tests.realhost.checkpoints_forge import file_name

    yield from _webui("classic", tmp_path_factory, ["--ckpt", str(_ckpt_dir("classic") / file_name("sd15"))])


@pytest.fixture(scope="session")
def neo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebUI]:
    """Forge Neo selects the first checkpoint in --ckpt-dirs (it has no --ckpt); the tests pick theirs by name."""
    yield from _webui("neo", tmp_path_factory, [])


@pytest.fixture(scope="session")
def sdnext(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebUI]:
    """SD.Next, offline, with the tiny diffusers SD1.5 and SDXL pipelines; it loads the SD1.5 one at start-up."""
    from tests.realhost import models_sdnext

    config = {"diffusers_dir": str(_ckpt_dir("sdnext")), "sd_model_checkpoint": models_sdnext.title("sd15")}
    yield from _webui("sdnext", tmp_path_factory, [], config)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items())
        terminalreporter.write_line(f"real hosts: {parts}")


# --- helpers for the tests ----------------------------------------------------------------------------------


@dataclass
class Generation:
    images: list[str]  # base64 PNGs as the API returns them
    info: dict[str, Any]

    @property
    def infotexts(self) -> list[str]:
        return list(self.info.get("infotexts", []))

    def infotext_value(self, key: str, index: int = 0) -> str | None:
        """`key: value` from an image's infotext (the last line holds the parameters)."""
        from tests.realhost.infotext import parse

        return parse(self.infotexts[index]).get(key)

    def pixels(self, index: int = 0) -> Any:
        import numpy as np
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(base64.b64decode(self.images[index]))).convert("RGB"))


def generate(webui: WebUI, payload: dict[str, Any], route: str = "txt2img") -> Generation:
    body = {"steps": 4, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler", "cfg_scale": 7, **payload}
    out = webui.post(f"/sdapi/v1/{route}", body)
    return Generation(out["images"], json.loads(out["info"]))


def ae(**values: Any) -> dict[str, Any]:
    """alwayson_scripts for A&E with named values (enabled unless said otherwise)."""
    return {"attend and excite": {"args": [{"enabled": True, **values}]}}


def use_model(webui: WebUI, name: str) -> None:
    titles = [m["title"] for m in webui.get("/sdapi/v1/sd-models")]
    title = next((t for t in titles if t.startswith(name)), None)
    assert title is not None, f"{name} not among {titles}"
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": title})


def hires_upscaler(webui: WebUI) -> dict[str, Any]:
    """The hires fields this host's API needs, by what it offers: "Latent" where it lists latent upscale modes
    (Neo lists none: an image upscaler, "None" is a plain resize), and `hr_additional_modules` where the request
    has that field (Forge and Neo raise without it: modules/processing.py, StableDiffusionProcessingTxt2Img).
    SD.Next has no latent-upscale-modes route: its latent upscalers are upscalers named "Latent ..." (a hires
    pass runs there only with a latent upscaler or hr_force)."""
    images = [u["name"] for u in webui.get("/sdapi/v1/upscalers")]
    if "/sdapi/v1/latent-upscale-modes" not in webui.get("/openapi.json")["paths"]:
        return {"hr_upscaler": next(n for n in images if n.startswith("Latent")), "hr_resize_mode": 1}
    latent = [m["name"] for m in webui.get("/sdapi/v1/latent-upscale-modes")]
    upscaler = "Latent" if "Latent" in latent else "None"
    assert upscaler in latent or upscaler in images, (latent, images)
    fields = {"hr_upscaler": upscaler}
    if "hr_additional_modules" in request_fields(webui, "txt2img"):
        fields["hr_additional_modules"] = ["Use same choices"]
    return fields


def request_fields(webui: WebUI, route: str) -> set[str]:
    """The fields of the request body of /sdapi/v1/{route}, from the host's own OpenAPI schema."""
    schema = webui.get("/openapi.json")
    body = schema["paths"][f"/sdapi/v1/{route}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = body.get("$ref") or body["allOf"][0]["$ref"]
    return set(schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"])
